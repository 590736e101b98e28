"""The agent loop's bookkeeping per prompt, and the two questions it asks of it (ARPO_SPEC.md §2, §6).

A `GroupState` holds one prompt's tree while it grows: the paths still running (`LivePath`), fork claims
waiting for slots (`ForkClaim`, served by `budget.grant`), decisions waiting for AEPO's consecutive-branch
count (`DeferredDecision`). `consecutive_rounds` answers that count once it can no longer change;
`certain_supplements` says how many supplements the prompt is sure to need already.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from arpo_engine.rollout.budget import PathKey, Priority, possible_forks
from arpo_engine.rollout.types import BranchDecision, Path, RolloutGroup


@dataclass
class GroupState:
    group: RolloutGroup
    budget_tokens: int
    awaiting_probe: bool = False
    """AEPO dynamic budget: the probe path is running and N is not chosen yet."""
    live: dict[PathKey, LivePath] = field(default_factory=dict)
    """Paths not finished yet: decoding, waiting for a tool, or about to be submitted."""
    claims: list[ForkClaim] = field(default_factory=list)
    """Fork claims not granted yet (see budget.py)."""
    keys: list[PathKey] = field(default_factory=list)
    """Stable key of each path, by index in group.paths."""
    forked_rounds: set[int] = field(default_factory=set)
    """Rounds (tool indices) at which some path of the prompt forked: AEPO's penalty counts them."""
    supplement_rounds: set[int] = field(default_factory=set)
    """The same for supplements: kept apart, since the other paths decided before any supplement existed."""
    deferred: list[DeferredDecision] = field(default_factory=list)
    shadows: dict[PathKey, LivePath] = field(default_factory=dict)
    """Supplements running ahead of their certainty, tools included: not in the tree until adopted."""
    """Branch decisions that wait for earlier rounds to settle (consecutive-branch penalty only)."""
    prompt_sent: bool = False
    max_depth: int = 0
    branch_depth: int = 0
    """max_depth over the paths other than supplements: what a supplement waits for."""


@dataclass
class LivePath:
    """Loop bookkeeping for one path; dropped when the rollout returns."""

    state: GroupState
    path: Path
    key: PathKey
    computed: int = 0
    """Context tokens (prompt + response) already in the sampler's cache, for prefill accounting."""
    pending_tool: int | None = None
    """t when the last thing appended was tool result t and its H_t window is still to come."""
    depth: int = 0
    """Logical round of the latest segment: segments that had to be generated one after another up to
    it, counting a fork's wait for its parent and a supplement's wait for its group."""
    requests: int = 0
    """Segments this path has asked for (names its requests' seeds)."""
    shadow: bool = False
    """A supplement running before it is certain (`GroupState.shadows`); its work counts once adopted."""
    dropped: bool = False
    """A shadow that can no longer be needed: whatever of it still comes back is ignored."""
    work: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    """A shadow's generated, prefilled, newly prefilled tokens and requests, until it is adopted."""

    @property
    def supplement(self) -> bool:
        """Supplements fill the group to M, so their decisions never get a slot to fork into."""
        return self.path.origin == "supplement"

    def next_decision(self) -> int:
        """The earliest tool index t at which this path can still take a branch decision."""
        return len(self.path.tool_calls) + (0 if self.pending_tool is not None else 1)


@dataclass
class ForkClaim:
    """A decision that forked and waits for its children's slots."""

    parent: LivePath
    record: BranchDecision
    depth: int

    @property
    def priority(self) -> Priority:
        return (self.record.tool_index, self.parent.key)


@dataclass
class DeferredDecision:
    """A branch decision measured but not taken: its consecutive-branch count l is not known yet."""

    parent: LivePath
    tool_index: int
    boundary: int
    h_t: float
    delta: float
    draw: float
    depth: int

    @property
    def priority(self) -> Priority:
        return (self.tool_index, self.parent.key)


def consecutive_rounds(state: GroupState, t: int, *, supplement: bool) -> int | None:
    """AEPO's l for a decision in round t: rounds t-1, t-2, … in a row in which the prompt branched.

    None while a round in that run could still change: a live path may yet decide there, or a
    decision or fork claim from that round or before it (whose children decide later) is open.
    A supplement counts every path's rounds; the other paths only their own, because a supplement
    starts, in the algorithm, after all of them have ended (here it may start sooner).
    """
    rounds = state.forked_rounds | state.supplement_rounds if supplement else state.forked_rounds
    count = 0
    for r in range(t - 1, 0, -1):
        if r in rounds:
            count += 1
            continue
        open_now = (
            any(lv.next_decision() <= r for lv in state.live.values() if supplement or not lv.supplement)
            or any(c.record.tool_index < r for c in state.claims)
            or any(d.tool_index <= r for d in state.deferred if supplement or not d.parent.supplement)
        )
        return None if open_now else count
    return count


def certain_supplements(state: GroupState, *, beam_width: int, max_tool_calls: int, eager: bool) -> int:
    """Supplements the prompt needs whatever its open decisions turn out to be: its free slots less all
    its paths could still fork. `eager=False`: only once nothing can fork any more (the literal order)."""
    free = state.group.budget - len(state.group.paths)
    if free <= 0:
        return 0
    forking = [lv.next_decision() for lv in state.live.values() if not lv.supplement]
    waiting = [c.record.tool_index for c in state.claims]
    waiting += [d.tool_index for d in state.deferred if not d.parent.supplement]
    if not eager:
        return 0 if forking or waiting else free
    return free - possible_forks(beam_width=beam_width, max_tool_calls=max_tool_calls, live=forking, waiting=waiting)


def likely_supplements(state: GroupState, *, beam_width: int, max_tool_calls: int, fork_probability: float) -> int:
    """Supplements the prompt will probably need: free slots less the forks expected if every open decision
    forks with `fork_probability`. Only for sending requests ahead (speculation.py): a guess costs compute,
    never a different sample."""
    free = state.group.budget - len(state.group.paths)
    growth = 1.0 + fork_probability * (beam_width - 1)  # expected paths one path becomes per decision
    expected = sum(growth ** max(0, max_tool_calls - lv.next_decision() + 1) - 1
                   for lv in state.live.values() if not lv.supplement)  # fmt: skip
    expected += sum((beam_width - 1) * growth ** max(0, max_tool_calls - c.record.tool_index) for c in state.claims)
    expected += sum(
        fork_probability * (beam_width - 1) * growth ** max(0, max_tool_calls - d.tool_index)
        for d in state.deferred
        if not d.parent.supplement
    )
    return max(0, int(free - expected + 0.5))
