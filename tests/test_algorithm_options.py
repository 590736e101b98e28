"""Every algorithm option of the config, run through `run_training` on the tiny model (ARPO_SPEC.md §4-6).

The maths of each option has its own unit tests (test_losses, test_advantages, test_learner); these
check that the option, set in a run config, reaches the learner and the run completes with its metric.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from arpo_engine.config import load_config
from arpo_engine.pipeline import run_training
from tests.test_trainer import write_config, write_data


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from arpo_engine.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def one_step(tmp_path: Path, tiny_dir: Path, **overrides: Any) -> dict[str, float]:
    write_data(tmp_path)
    overrides.setdefault("train", {"steps": 1, "eval_every": 0})
    config = load_config(write_config(tmp_path, tiny_dir, **overrides))
    history: list[dict[str, float]] = []
    result = run_training(config, log=lambda _: None, sink=lambda step, m: history.append(m))
    assert result.steps_done == 1
    return history[-1]


def test_a_run_with_kl_scores_against_the_frozen_starting_policy(tmp_path: Path, tiny_dir: Path) -> None:
    metrics = one_step(tmp_path, tiny_dir, algorithm={"kl_coef": 0.1})
    assert metrics["learner/updates"] == 2
    assert metrics["loss/kl"] > 0  # the second mini-batch runs on weights the first one moved
