"""Rollout metrics in the vocabulary of PRODUCT.md (entropy/*, branch/*, tools/*, response/*).

Costs count what was actually computed: a forked path's shared prefix and the tool calls in it were
generated and run once, by its ancestor, so `tools/calls_total` and generated-token counts only take
the part of each path after its fork boundary. Per-trajectory numbers (`tools/calls_per_traj`,
`response/len_mean`) describe each path as the learner sees it.

The loop has no synchronous rounds; `rollout/rounds` is the longest chain of segments that had to be
generated one after another (a fork waits for its parent's decision, a supplement for its group), i.e.
the number of rounds a synchronous loop would have needed. `time/tools_s` is the time the loop sat
waiting for tools with nothing else to do; tool calls that overlap decoding cost nothing there.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from arpo_engine.rollout.types import Path, RolloutGroup


def _own_start(path: Path) -> int:
    return path.fork_boundary or 0


def _mean(values: Sequence[float]) -> float:
    return float(statistics.fmean(values)) if values else 0.0


def rollout_metrics(
    groups: Sequence[RolloutGroup],
    *,
    rollout_seconds: float,
    tool_seconds: float,
    generated_tokens: int,
    prefill_tokens: int,
    prefill_new_tokens: int,
    rounds: int,
    requests: int = 0,
    sampler_steps: int = 0,
) -> dict[str, float]:
    paths = [p for g in groups for p in g.paths]
    own_calls = [
        c for p in paths for c in p.tool_calls if c.result_start >= _own_start(p)
    ]
    decisions = [d for p in paths for d in p.decisions if _decided_here(p, d.tool_index)]
    own_entropies = [
        e for p in paths for e in p.entropies[_own_start(p) :] if e is not None
    ]
    latencies = sorted(c.latency_ms for c in own_calls)
    forks = sum(1 for p in paths if p.origin == "fork")
    return {
        "entropy/token_mean": _mean(own_entropies),
        "entropy/initial_mean": _mean([p.h_initial for p in paths if p.origin != "fork" and p.h_initial is not None]),
        "entropy/after_tool_mean": _mean([d.h_t for d in decisions]),
        "entropy/delta_mean": _mean([d.delta_h for d in decisions]),
        "branch/forks": float(forks),
        "branch/fork_rate": _mean([1.0 if d.children else 0.0 for d in decisions]),
        "branch/supplements": float(sum(g.supplements for g in groups)),
        "tools/calls_per_traj": _mean([float(len(p.tool_calls)) for p in paths]),
        "tools/calls_total": float(len(own_calls)),
        "tools/error_rate": _mean([1.0 if c.error else 0.0 for c in own_calls]),
        "tools/limit_hits": float(sum(1 for p in paths if p.finish_reason == "call_limit")),
        "tools/latency_ms_p50": float(statistics.median(latencies)) if latencies else 0.0,
        "response/len_mean": _mean([float(len(p.token_ids)) for p in paths]),
        "response/clip_frac": _mean([1.0 if p.finish_reason == "length" else 0.0 for p in paths]),
        "time/rollout_s": rollout_seconds,
        "time/tools_s": tool_seconds,
        "throughput/rollout_tok_s": generated_tokens / rollout_seconds if rollout_seconds > 0 else 0.0,
        "rollout/paths": float(len(paths)),
        "rollout/rounds": float(rounds),
        "rollout/requests": float(requests),
        "rollout/sampler_steps": float(sampler_steps),
        "rollout/tokens_generated": float(generated_tokens),
        "rollout/tokens_prefilled": float(prefill_tokens),
        "rollout/tokens_prefilled_uncached": float(prefill_new_tokens),
    }


def _decided_here(path: Path, tool_index: int) -> bool:
    """Decisions copied into a fork from its parent are counted once, on the parent."""
    return path.fork_tool_index is None or tool_index > path.fork_tool_index
