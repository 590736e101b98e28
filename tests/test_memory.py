"""Memory estimate: importable without torch, sized from the run, and what Ray is asked for."""

import dataclasses
import subprocess
import sys
from pathlib import Path

from arpo_engine.config import RunConfig
from arpo_engine.memory import estimate, kv_cache_bytes

ROOT = Path(__file__).resolve().parents[1]


def config(tiny_model_dir: Path, **rollout: object) -> RunConfig:
    raw = {"model": {"path": str(tiny_model_dir)}, "rollout": {"group_size": 8, "initial_samples": 4,
           "max_response_tokens": 512, **rollout}, "optim": {"train_batch_prompts": 4}}  # fmt: skip
    return RunConfig.from_dict(raw).validate()


def test_memory_estimate_imports_without_torch():
    code = "import sys, arpo_engine.memory; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_kv_cache_grows_with_the_paths_of_a_step(tiny_model_dir):
    small = kv_cache_bytes(config(tiny_model_dir, group_size=4))
    large = kv_cache_bytes(config(tiny_model_dir, group_size=16))
    assert large == 4 * small


def test_activation_checkpointing_lowers_the_learner_estimate(tiny_model_dir):
    base = config(tiny_model_dir)
    checkpointed = dataclasses.replace(base, optim=dataclasses.replace(base.optim, activation_checkpointing=True))
    assert estimate(checkpointed).learner_bytes < estimate(base).learner_bytes


def test_ray_is_asked_for_a_gpu_only_where_the_run_uses_one(tiny_model_dir):
    run = config(tiny_model_dir)
    assert estimate(run, gpu=False).ray_resources()["num_gpus"] == 0
    assert estimate(run, gpu=True).ray_resources()["num_gpus"] == 1
    assert estimate(run).ray_resources()["memory"] == estimate(run).total_bytes
