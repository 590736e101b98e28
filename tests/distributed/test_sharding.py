"""Data-parallel rollouts without Ray: slices of prompts rolled out apart give the trees one loop gives,
and a rollout whose pieces come from different policy versions is refused."""

import random

import pytest

from arpo_engine.distributed.shards import PolicyVersionError, Shard, check_versions, merge_shards, shard_bounds
from arpo_engine.rollout.formats import get_format
from arpo_engine.rollout.scripted import ScriptedSampler
from arpo_engine.trainer import local_rollouts
from tests.rollout.test_agent import VOCAB, Sample, UpperTool, config
from tests.rollout.test_scheduling import comparable, seeded_script


def test_slices_are_contiguous_cover_every_prompt_once_and_differ_by_at_most_one():
    assert shard_bounds(5, 2) == [(0, 3), (3, 5)]
    assert shard_bounds(2, 3) == [(0, 1), (1, 2), (2, 2)]
    for n in range(0, 12):
        for k in range(1, 5):
            bounds = shard_bounds(n, k)
            assert [i for a, b in bounds for i in range(a, b)] == list(range(n))
            sizes = [b - a for a, b in bounds]
            assert max(sizes) - min(sizes) <= 1


def _rollouts(cfg):
    sampler = ScriptedSampler(seeded_script, VOCAB)  # type: ignore[arg-type]
    return local_rollouts(cfg, sampler, {"upper": UpperTool()}, get_format("tags"))


def test_prompts_split_over_samplers_grow_the_trees_one_loop_grows():
    cfg = config(
        rollout={"group_size": 6, "initial_samples": 2, "max_tool_calls": 3},
        branching={"rule": "stochastic", "consecutive_penalty": 0.2},
    )
    samples = [Sample(f"question {i}") for i in range(5)]
    rng = random.Random(7)
    whole = _rollouts(cfg)(samples, rng, False, 10)

    start = random.Random(7).getstate()
    shards = []
    for i, (a, b) in enumerate(shard_bounds(len(samples), 2)):
        piece_rng = random.Random()
        piece_rng.setstate(start)
        batch = _rollouts(cfg)(samples[a:b], piece_rng, False, 10 + a)
        shards.append(Shard(i, 3, batch, piece_rng.getstate()))
    merged = merge_shards(shards[::-1], expected_version=3, rollout_seconds=1.0)

    groups, metrics = comparable(merged)
    assert metrics.pop("rollout/samplers") == 2.0
    assert (groups, metrics) == comparable(whole)
    assert [g.prompt_index for g in merged.groups] == [10, 11, 12, 13, 14]
    assert shards[0].rng_state == rng.getstate()  # the driver's generator moves on exactly as one loop's did
    assert whole.metrics["branch/forks"] > 0


def test_pieces_sampled_at_another_version_are_refused():
    cfg = config()
    batch = _rollouts(cfg)([Sample("q")], random.Random(0), False, 0)
    state = random.Random(0).getstate()
    shards = [Shard(0, 4, batch, state), Shard(1, 3, batch, state)]
    with pytest.raises(PolicyVersionError, match="sampler 1 holds version 3; the learner's is 4"):
        merge_shards(shards, expected_version=4, rollout_seconds=1.0)


def test_every_sampler_must_hold_the_learners_version():
    check_versions([2, 2, 2], 2, what="before a rollout")
    with pytest.raises(PolicyVersionError, match="sampler 0 holds version 1, sampler 2 holds version 3"):
        check_versions([1, 2, 3], 2, what="before a rollout")
