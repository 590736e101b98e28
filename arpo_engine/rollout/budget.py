"""Which forks get a prompt's path slots, whatever order the decisions arrive in (ARPO_SPEC.md §2, step 4).

A prompt holds at most M paths, so when forks compete for the last free slots, someone has to lose.
Paths now run unsynchronised, and the decisions that compete can finish in either order. To keep the
rollout a function of the seed alone, fork claims are served as if one after another in a fixed order,
by (t, key of the deciding path): every decision at tool 1 before any at tool 2, and so on, like the
rounds of a synchronous loop. A claim is granted as soon as nothing that comes earlier in that order
can change what it gets: either no earlier decision is still to come, or the slots left cover the most
that all of them together could take. While slots are plentiful nothing waits; near the budget a fork
waits for the earlier decisions of its own prompt (the paths themselves never wait).

`possible_forks` bounds what the prompt's forking can still add at all (each live path by its remaining
tool calls). Once that bound is below the free slots, some supplements are certain, and the loop starts
them at once instead of after the prompt's last path has ended.
"""

from __future__ import annotations

from collections.abc import Iterable

PathKey = tuple[int, ...]
"""A path's name in its tree: (phase, i) for a fresh sample, parent key + (t, j) for a fork."""
Priority = tuple[int, PathKey]
"""(t, key of the deciding path): the order in which fork claims are served."""


def grant(
    claim: Priority,
    *,
    free: int,
    beam_width: int,
    live: Iterable[Priority],
    waiting: Iterable[Priority],
) -> int | None:
    """Children the claim may fork now, or None while an earlier decision could still change that.

    free: M minus the prompt's paths now. live: for each unfinished path of the prompt, (t of its next
    decision, its key). waiting: the priorities of the prompt's other claims not granted yet.
    """
    want = beam_width - 1
    if free <= 0 or want <= 0:
        return 0  # slots never come back, so nothing earlier can change this
    last = claim[0]  # the earlier decisions that matter are those at tools up to the claim's own
    earlier = sum(_subtree(beam_width, last - t + 1) for t, key in live if (t, key) < claim)
    earlier += sum(want * beam_width ** (last - t) for t, key in waiting if (t, key) < claim)
    if earlier == 0:
        return min(want, free)
    if earlier + want <= free:
        return want
    return None


def possible_forks(*, beam_width: int, max_tool_calls: int, live: Iterable[int], waiting: Iterable[int]) -> int:
    """The most paths the prompt's forks can still add, whatever the draws.

    live: for each unfinished path that may fork, the t of its next decision; it can still decide at
    t..max_tool_calls, and so can its forks. waiting: the t of each claim or decision not settled yet;
    its Z-1 children decide from t+1 on.
    """
    bound = sum(_subtree(beam_width, max_tool_calls - t + 1) for t in live)
    return bound + sum((beam_width - 1) * beam_width ** max(0, max_tool_calls - t) for t in waiting)


def _subtree(beam_width: int, levels: int) -> int:
    """Most paths one path can add by forking at `levels` consecutive decisions (its forks fork too)."""
    return beam_width ** max(0, levels) - 1
