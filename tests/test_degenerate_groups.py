"""All-equal-reward groups stay in the batch at zero advantage by default (ARPO_SPEC.md §4, as verl);
dropping them (DAPO-style) is the named option `algorithm.degenerate_groups: drop`."""

from __future__ import annotations

import copy

import pytest

from arpo_engine.advantages import attribute_advantages
from arpo_engine.config import AlgorithmConfig, ConfigError, OptimConfig, RunConfig
from arpo_engine.learner import Learner, TrainSequence
from arpo_engine.rollout.types import Path, RolloutGroup
from arpo_engine.trainer import build_sequences
from tests.toy import small_llama


def group(index: int, lengths: list[int]) -> RolloutGroup:
    paths = [
        Path(id=i, origin="initial", token_ids=[(7 * index + 3 * i + j) % 290 + 5 for j in range(n)], mask=[1] * n)
        for i, n in enumerate(lengths)
    ]
    return RolloutGroup(
        prompt_index=index, prompt_ids=[1, 2, 3], prompt_text="q", sample={}, initial_samples=2, budget=2, paths=paths
    )


def batch(*, keep: bool) -> tuple[list[TrainSequence], int]:
    """One informative group (rewards 1, 0; paths of 6 and 9 tokens) and one tied group (1, 1; 5 and 5)."""
    groups = [group(0, [6, 9]), group(1, [5, 5])]
    advantages = [attribute_advantages(g, r) for g, r in zip(groups, [[1.0, 0.0], [1.0, 1.0]], strict=True)]
    sequences = build_sequences(groups, advantages, keep_degenerate=keep)
    return sequences, sum(sum(s.mask) for s in sequences)


def update(sequences: list[TrainSequence], mini_batch_prompts: int) -> dict[str, float]:
    learner = Learner(
        copy.deepcopy(MODEL),
        optim=OptimConfig(lr=1e-3, mini_batch_prompts=mini_batch_prompts),
        algorithm=AlgorithmConfig(),
        pad_token_id=0,
    )
    return learner.update(sequences)


MODEL = small_llama()


def test_degenerate_groups_are_kept_at_zero_advantage_by_default() -> None:
    sequences, _ = batch(keep=True)
    assert AlgorithmConfig().degenerate_groups == "keep"
    assert [s.prompt_index for s in sequences] == [0, 0, 1, 1]
    assert all(a == 0.0 for s in sequences if s.prompt_index == 1 for a in s.advantages)


def test_kept_degenerate_groups_count_in_the_number_of_optimizer_updates() -> None:
    kept, _ = batch(keep=True)
    dropped, _ = batch(keep=False)
    assert update(kept, mini_batch_prompts=1)["learner/updates"] == 2  # one per prompt, as the spec counts
    assert update(dropped, mini_batch_prompts=1)["learner/updates"] == 1


def test_kept_degenerate_groups_count_in_the_token_mean_denominator() -> None:
    kept, kept_tokens = batch(keep=True)
    dropped, dropped_tokens = batch(keep=False)
    assert (kept_tokens, dropped_tokens) == (25, 15)
    # one mini-batch, ratio 1 at its first step: loss = -sum(A over tokens) / (tokens of the mini-batch)
    a = attribute_advantages(group(0, [6, 9]), [1.0, 0.0]).path_advantages
    numerator = -(6 * a[0] + 9 * a[1])
    assert update(kept, mini_batch_prompts=2)["loss/policy"] == pytest.approx(numerator / 25, rel=1e-5)
    assert update(dropped, mini_batch_prompts=2)["loss/policy"] == pytest.approx(numerator / 15, rel=1e-5)


def test_dropping_degenerate_groups_is_a_named_option_and_anything_else_is_refused() -> None:
    config = RunConfig.from_dict({"algorithm": {"degenerate_groups": "drop"}})
    assert config.algorithm.degenerate_groups == "drop"
    with pytest.raises(ConfigError, match="degenerate_groups"):
        RunConfig.from_dict({"algorithm": {"degenerate_groups": "skip"}})
