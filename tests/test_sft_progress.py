"""The SFT cold start reports its progress and loss after every update (`sft/` names), apart from RL steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from arpo_engine.config import RunConfig
from arpo_engine.pipeline import run_sft_stage, run_training

DEMO = Path(__file__).resolve().parents[1] / "var" / "demo"


def _config(tmp_path: Path, model: Path) -> RunConfig:
    return RunConfig.from_dict({
        "name": "sft-progress",
        "model": {"path": str(model), "max_model_len": 4096},
        "data": {"train_path": str(DEMO / "train.jsonl"), "max_prompt_tokens": 2048},
        "sft": {"data_path": str(DEMO / "sft_tags.jsonl"), "max_examples": 3, "epochs": 1.0, "batch_size": 1,
                "lr": 1e-4},
        "tools": [{"name": "python", "kind": "python"}],
        "rollout": {"sampler": "transformers", "group_size": 2, "initial_samples": 2, "max_response_tokens": 8},
        "branching": {"enabled": False},
        "optim": {"train_batch_prompts": 1, "mini_batch_prompts": 1},
        "train": {"steps": 1, "eval_every": 0},
        "checkpoint": {"dir": str(tmp_path / "ckpt"), "every_steps": 1},
    }).validate()  # fmt: skip


def test_the_sft_stage_reports_loss_and_progress_after_every_update(tmp_path: Path, tiny_model_dir: Path) -> None:
    seen: list[tuple[int, dict[str, float]]] = []
    run_sft_stage(_config(tmp_path, tiny_model_dir), tmp_path / "sft", log=lambda line: None,
                  on_progress=lambda update, metrics: seen.append((update, metrics)))  # fmt: skip
    assert [u for u, _ in seen] == [1, 2, 3]
    assert [m["sft/progress"] for _, m in seen] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert all(m["sft/loss"] > 0 and m["sft/updates_total"] == 3 for _, m in seen)


def test_a_run_with_demonstrations_reports_its_sft_apart_from_its_rl_steps(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    sft: list[int] = []
    rl: list[int] = []
    run_training(
        _config(tmp_path, tiny_model_dir), run_id="1", log=lambda line: None,
        sink=lambda step, metrics: rl.append(step), sft_sink=lambda update, metrics: sft.append(update),
    )  # fmt: skip
    assert sft == [1, 2, 3] and rl == [1]
    assert (tmp_path / "ckpt" / "run-1" / "sft-model" / "config.json").is_file()
