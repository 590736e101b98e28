"""The run actor asks Ray for the memory the engine estimates for its config, and for GPUs it names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arpo_engine.config import RunConfig
from arpo_engine.memory import estimate
from worker.relay import _sized_resources


def _config(model_dir: Path, **rollout: Any) -> dict[str, Any]:
    return RunConfig.from_dict({"model": {"path": str(model_dir)}, "rollout": rollout}).to_dict()


def test_memory_follows_the_engines_estimate_and_grows_with_the_group(tiny_model_dir: Path, settings: Any) -> None:
    settings.ARPO_RUN_REQUEST_MEMORY = True
    small = _sized_resources(_config(tiny_model_dir, group_size=4, initial_samples=2))
    large = _sized_resources(_config(tiny_model_dir, group_size=32, initial_samples=8))
    expected = estimate(RunConfig.from_dict(_config(tiny_model_dir, group_size=4, initial_samples=2))).total_bytes
    assert small["memory"] == expected
    assert large["memory"] > small["memory"]
    assert small["num_cpus"] == settings.ARPO_RUN_NUM_CPUS


def test_a_config_that_names_a_cuda_device_asks_for_a_gpu(tiny_model_dir: Path, settings: Any) -> None:
    settings.ARPO_RUN_REQUEST_MEMORY = True
    config = RunConfig.from_dict({"model": {"path": str(tiny_model_dir)}, "optim": {"device": "cuda"}}).to_dict()
    assert _sized_resources(config)["num_gpus"] == 1


def test_an_unknown_model_folder_or_the_setting_off_places_the_run_unsized(tmp_path: Path, settings: Any) -> None:
    settings.ARPO_RUN_REQUEST_MEMORY = True
    assert "memory" not in _sized_resources(_config(tmp_path / "missing"))
    settings.ARPO_RUN_REQUEST_MEMORY = False
    assert "memory" not in _sized_resources(_config(tmp_path / "missing"))


def test_a_distributed_runs_actor_asks_only_for_what_driving_takes(tiny_model_dir: Path, settings: Any) -> None:
    from arpo_engine.memory import RUNTIME_BYTES

    settings.ARPO_RUN_REQUEST_MEMORY = True
    settings.ARPO_RUN_NUM_GPUS = 1
    config = RunConfig.from_dict(
        {"model": {"path": str(tiny_model_dir)}, "optim": {"device": "cuda", "train_batch_prompts": 4},
         "distributed": {"samplers": 2, "sampler_gpus": 1, "learner_gpus": 1}}
    ).to_dict()  # fmt: skip
    assert _sized_resources(config) == {"num_cpus": settings.ARPO_RUN_NUM_CPUS, "num_gpus": 0, "memory": RUNTIME_BYTES}
