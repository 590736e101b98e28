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


def one_step(tmp_path: Path, tiny_dir: Path, preset: str | None = None, **overrides: Any) -> dict[str, float]:
    write_data(tmp_path)
    overrides.setdefault("train", {"steps": 1, "eval_every": 0})
    config = load_config(write_config(tmp_path, tiny_dir, **overrides), preset=preset)
    history: list[dict[str, float]] = []
    result = run_training(config, log=lambda _: None, sink=lambda step, m: history.append(m))
    assert result.steps_done == 1
    return history[-1]


def test_a_run_with_kl_scores_against_the_frozen_starting_policy(tmp_path: Path, tiny_dir: Path) -> None:
    metrics = one_step(tmp_path, tiny_dir, algorithm={"kl_coef": 0.1})
    assert metrics["learner/updates"] == 2
    assert metrics["loss/kl"] > 0  # the second mini-batch runs on weights the first one moved


OPTIONS = {
    "entropy bonus": {"entropy_coef": 0.01},
    "entropy-balanced clipping": {"entropy_balanced_clip": True},
    "entropy-aware advantage": {"entropy_aware_advantage": True},
    "hard advantage": {"advantage": "hard"},
    "degenerate groups dropped": {"degenerate_groups": "drop"},
}


@pytest.mark.parametrize("algorithm", OPTIONS.values(), ids=OPTIONS.keys())
def test_each_algorithm_option_runs_a_training_step_through_the_learner(
    tmp_path: Path, tiny_dir: Path, algorithm: dict[str, Any]
) -> None:
    metrics = one_step(tmp_path, tiny_dir, algorithm=algorithm)
    assert metrics["learner/updates"] >= 1
    assert metrics["entropy/token_mean"] > 0 and metrics["grad/norm"] > 0


def test_the_aepo_preset_runs_end_to_end_with_its_branching_and_loss_options(tmp_path: Path, tiny_dir: Path) -> None:
    write_data(tmp_path)
    config = load_config(write_config(tmp_path, tiny_dir, train={"steps": 1, "eval_every": 0}), preset="aepo")
    assert config.branching.dynamic_budget and config.branching.consecutive_penalty == 0.05
    assert config.algorithm.entropy_balanced_clip and config.algorithm.entropy_aware_advantage
    metrics = one_step(tmp_path, tiny_dir, preset="aepo")
    assert metrics["learner/updates"] >= 1 and metrics["train/sequences"] > 0
    assert "branch/forks" in metrics and metrics["entropy/token_mean"] > 0
