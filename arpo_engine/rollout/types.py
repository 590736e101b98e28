"""Records that leave the rollout stage: a rollout group is the tree of paths for one prompt.

Every path holds its whole response (model tokens and tool-result tokens) so training can use it
without the tree; the tree facts (parent, fork boundary, branch decisions) make it auditable and
let `hard` advantage attribution find shared prefixes (ARPO_SPEC.md §2, §4).
Token indices are positions in the response, i.e. counted after the prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

FinishReason = Literal["eos", "length", "call_limit", "stop"]
Origin = Literal["initial", "fork", "supplement"]


@dataclass
class Segment:
    kind: Literal["model", "tool"]
    start: int
    """First response-token index of the segment."""
    end: int
    """One past the last response-token index."""
    text: str


@dataclass
class ToolEvent:
    index: int
    """1-based position among this path's tool calls (t in ARPO_SPEC.md §2)."""
    name: str
    arguments: Mapping[str, Any]
    raw: str
    output: str
    error: str | None
    latency_ms: float
    result_start: int
    """Response-token span of the inserted result (mask 0)."""
    result_end: int


@dataclass
class BranchDecision:
    tool_index: int
    """t: the decision is taken at the boundary right after tool result t."""
    boundary: int
    """Response-token index right after result t, where forks leave the path."""
    h_t: float
    """Normalised entropy of the first k tokens generated after result t."""
    delta_h: float
    """h_t - H_initial."""
    score: float
    """Branch probability (stochastic rule, after clipping and penalty) or a+b*dH (threshold rule)."""
    draw: float | None
    """The uniform draw compared with `score` (stochastic rule only)."""
    forked: bool
    children: list[int] = field(default_factory=list)
    """Ids of the paths forked here (can be fewer than Z-1 when the budget ran out)."""


@dataclass
class Path:
    id: int
    origin: Origin
    parent: int | None = None
    fork_boundary: int | None = None
    """Response-token index where this path leaves its parent; tokens before it are shared."""
    fork_tool_index: int | None = None
    h_initial: float | None = None
    token_ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    """1 for model tokens (trained), 0 for tool-result tokens."""
    entropies: list[float | None] = field(default_factory=list)
    """Per-token entropy in nats for model tokens; None for tool-result tokens."""
    segments: list[Segment] = field(default_factory=list)
    tool_calls: list[ToolEvent] = field(default_factory=list)
    decisions: list[BranchDecision] = field(default_factory=list)
    finish_reason: FinishReason | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)

    @property
    def num_model_tokens(self) -> int:
        return sum(self.mask)


@dataclass
class RolloutGroup:
    """All paths sampled for one prompt."""

    prompt_index: int
    prompt_ids: list[int]
    prompt_text: str
    sample: Mapping[str, Any]
    """The dataset row (question, answer, …) the prompt came from."""
    initial_samples: int
    """N actually used for this prompt (differs from the config under AEPO's dynamic budget)."""
    budget: int
    """M: the most paths this group may hold."""
    paths: list[Path] = field(default_factory=list)
    supplements: int = 0
    entropy_estimator: str = "exact"
    """`exact` (full softmax) or `topk-<k>` (estimate from the top-k log-probs)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
