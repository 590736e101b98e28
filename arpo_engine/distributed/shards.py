"""Data-parallel rollouts, the pure part: which prompts each sampler gets, and one batch from the pieces.

Each sampler gets a contiguous slice of the step's prompts, so a prompt's whole tree (its first samples,
forks and supplements; ARPO_SPEC.md §2) is grown on one sampler, whose prefix cache holds that prompt.
The slice keeps its prompt indices and every sampler starts from the same rollout-generator state, so
the trees are the ones the in-process loop grows: each request's seed and each branch draw is named by
(base seed, prompt index, path key), never by which process drew it (rollout/seeding.py).

A rollout never mixes policy versions: every piece says the version it was sampled with, and the
driver refuses pieces whose versions differ from the learner's (`check_versions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from arpo_engine.rollout.agent import RolloutBatch
from arpo_engine.rollout.metrics import rollout_metrics


class PolicyVersionError(RuntimeError):
    """A sampler holds other weights than the learner's current ones."""


@dataclass
class Shard:
    """One sampler's part of a rollout."""

    sampler: int
    """The sampler's index in the run (its slice's position)."""
    version: int
    """Policy version the sampler generated with: learner updates applied to its weights."""
    batch: RolloutBatch
    rng_state: Any
    """The rollout generator's state afterwards (`random.Random.getstate()`), the same on every sampler."""


def shard_bounds(n: int, k: int) -> list[tuple[int, int]]:
    """k contiguous slices [start, end) of n prompts, sizes differing by at most one (the first ones larger)."""
    if k < 1:
        raise ValueError("at least one sampler is needed")
    size, extra = divmod(n, k)
    bounds, start = [], 0
    for i in range(k):
        end = start + size + (1 if i < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds


def check_versions(versions: Sequence[int], expected: int, *, what: str) -> None:
    """Raise PolicyVersionError unless every sampler (by index) holds the `expected` policy version."""
    stale = {i: v for i, v in enumerate(versions) if v != expected}
    if stale:
        held = ", ".join(f"sampler {i} holds version {v}" for i, v in stale.items())
        raise PolicyVersionError(f"{what}: {held}; the learner's is {expected}, and a rollout never mixes versions")


_SUMMED = (
    "rollout/tokens_generated",
    "rollout/tokens_prefilled",
    "rollout/tokens_prefilled_uncached",
    "rollout/requests",
    "rollout/sampler_steps",
)


def merge_shards(shards: Sequence[Shard], *, expected_version: int, rollout_seconds: float) -> RolloutBatch:
    """The pieces as one batch, groups in prompt order, metrics as if one loop had rolled them all out.

    Counts add up; `time/tools_s` and `rollout/rounds` take the slowest sampler (they ran side by side);
    throughput is over the driver's wall time of the whole rollout.
    """
    check_versions([s.version for s in shards], expected_version, what="rollout results")
    if len({repr(s.rng_state) for s in shards}) > 1:
        raise RuntimeError("samplers ended the rollout with different generator states; they must draw alike")
    ordered = sorted(shards, key=lambda s: s.sampler)
    groups = [g for s in ordered for g in s.batch.groups]
    parts = [s.batch.metrics for s in ordered]
    total = {key: sum(int(m.get(key, 0.0)) for m in parts) for key in _SUMMED}
    metrics = rollout_metrics(
        groups,
        rollout_seconds=rollout_seconds,
        tool_seconds=max((m.get("time/tools_s", 0.0) for m in parts), default=0.0),
        generated_tokens=total["rollout/tokens_generated"],
        prefill_tokens=total["rollout/tokens_prefilled"],
        prefill_new_tokens=total["rollout/tokens_prefilled_uncached"],
        rounds=int(max((m.get("rollout/rounds", 0.0) for m in parts), default=0.0)),
        requests=total["rollout/requests"],
        sampler_steps=total["rollout/sampler_steps"],
    )
    metrics["rollout/samplers"] = float(len(shards))
    return RolloutBatch(groups=groups, metrics=metrics)
