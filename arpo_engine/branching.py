"""ARPO's branch decision at a tool-result boundary, with the random draw passed in (ARPO_SPEC.md §2, §6).

Two rules, chosen by name:
- `stochastic` (official code): fork with probability clip(alpha + beta*dH, 0, 1).
- `threshold` (paper Eq. 5): fork iff alpha + beta*dH > tau.
AEPO's consecutive-branch penalty scales the score by (1 - penalty*l); its dynamic budget picks N per
prompt from one probe rollout.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from arpo_engine.config import BranchingConfig


@dataclass(frozen=True)
class Decision:
    score: float
    """Probability (stochastic) or alpha + beta*dH (threshold), after the AEPO penalty."""
    draw: float | None
    forked: bool


BranchRule = Callable[[float, BranchingConfig, float, float], Decision]


def stochastic_rule(delta_h: float, cfg: BranchingConfig, penalty_factor: float, draw: float) -> Decision:
    p = min(1.0, max(0.0, cfg.alpha + cfg.beta * delta_h)) * penalty_factor
    return Decision(score=p, draw=draw, forked=draw < p)


def threshold_rule(delta_h: float, cfg: BranchingConfig, penalty_factor: float, draw: float) -> Decision:
    score = (cfg.alpha + cfg.beta * delta_h) * penalty_factor
    return Decision(score=score, draw=None, forked=score > cfg.tau)


BRANCH_RULES: dict[str, BranchRule] = {"stochastic": stochastic_rule, "threshold": threshold_rule}


def decide(delta_h: float, cfg: BranchingConfig, *, consecutive: int, draw: float) -> Decision:
    """Branch decision after a tool result; `consecutive` = AEPO's l, the rounds in a row the prompt branched."""
    factor = max(0.0, 1.0 - cfg.consecutive_penalty * consecutive)
    return BRANCH_RULES[cfg.rule](delta_h, cfg, factor, draw)


def fork_count(paths_now: int, budget: int, beam_width: int) -> int:
    """How many clones a fork may add: Z-1, fewer when the prompt's budget M would be exceeded."""
    return max(0, min(beam_width - 1, budget - paths_now))


def dynamic_initial_samples(budget: int, h_root: float, h_tool_mean: float) -> int:
    """AEPO dynamic budget: N = clamp(floor(M * sigmoid(0.5 * (H_root - H_tool))) + 1, 1, M)."""
    sigmoid = 1.0 / (1.0 + math.exp(-0.5 * (h_root - h_tool_mean)))
    return max(1, min(budget, math.floor(budget * sigmoid) + 1))
