"""Memory estimate: importable without torch, sized from the run, and what Ray is asked for."""

import dataclasses
import subprocess
import sys
from pathlib import Path

from arpo_engine.config import RunConfig
from arpo_engine.memory import estimate, kv_cache_bytes, kv_cache_tokens, model_shape

ROOT = Path(__file__).resolve().parents[1]


def config(tiny_model_dir: Path, **rollout: object) -> RunConfig:
    raw = {"model": {"path": str(tiny_model_dir)}, "rollout": {"group_size": 8, "initial_samples": 4,
           "max_response_tokens": 512, **rollout}, "optim": {"train_batch_prompts": 4}}  # fmt: skip
    return RunConfig.from_dict(raw).validate()


def test_memory_estimate_imports_without_torch():
    code = "import sys, arpo_engine.memory; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_kv_cache_holds_each_prompt_once_and_m_response_budgets_beside_it(tiny_model_dir):
    # 4 prompts of at most 1024 tokens (the default bound), M paths of 512 tokens and a 32-token block each
    for m in (4, 16):
        assert kv_cache_tokens(config(tiny_model_dir, group_size=m)) == int(4 * (1024 + m * (512 + 32)) * 1.1)
    no_sharing = kv_cache_tokens(config(tiny_model_dir, group_size=16, enable_prefix_caching=False))
    assert no_sharing == int(4 * 16 * (1024 + 512 + 32) * 1.1)


def test_kv_cache_bytes_count_keys_and_values_of_every_layer(tiny_model_dir):
    run = config(tiny_model_dir)
    shape = model_shape(run)
    per_token = 2 * shape.layers * shape.kv_heads * shape.head_dim * 4  # float32
    assert kv_cache_bytes(run) == kv_cache_tokens(run) * per_token


def test_activation_checkpointing_lowers_the_learner_estimate(tiny_model_dir):
    base = config(tiny_model_dir)
    checkpointed = dataclasses.replace(base, optim=dataclasses.replace(base.optim, activation_checkpointing=True))
    assert estimate(checkpointed).learner_bytes < estimate(base).learner_bytes


def test_ray_is_asked_for_a_gpu_only_where_the_run_uses_one(tiny_model_dir):
    run = config(tiny_model_dir)
    assert estimate(run, gpu=False).ray_resources()["num_gpus"] == 0
    assert estimate(run, gpu=True).ray_resources()["num_gpus"] == 1
    assert estimate(run).ray_resources()["memory"] == estimate(run).total_bytes


def test_a_cpu_run_peaks_at_the_larger_of_rollout_and_update_where_vllm_frees_its_memory_for_the_update(
    tiny_model_dir,
):
    run = config(tiny_model_dir, sampler="vllm")
    cpu = estimate(run, gpu=False)
    assert cpu.sampler_released_for_update and cpu.learner_resident_bytes < cpu.learner_bytes
    rollout, update = cpu.sampler_bytes + cpu.learner_resident_bytes, cpu.learner_bytes
    assert cpu.total_bytes == max(rollout, update) + cpu.runtime_bytes < cpu.sampler_bytes + update + cpu.runtime_bytes
    # on a GPU (vLLM's sleep mode is not used) and across Ray actors nothing is freed: the two add up
    gpu = estimate(run, gpu=True)
    assert not gpu.sampler_released_for_update
    assert gpu.total_bytes == gpu.sampler_bytes + gpu.learner_bytes + gpu.runtime_bytes
    actors = RunConfig.from_dict({**run.to_dict(), "distributed": {"samplers": 2}}).validate()
    assert not estimate(actors).sampler_released_for_update
    # the transformers sampler trains its own model: nothing to free, nothing of vLLM's counted
    hf = estimate(config(tiny_model_dir, sampler="transformers"))
    assert hf.sampler_bytes == 0 and not hf.sampler_released_for_update


def test_the_learner_holds_its_weights_and_adamw_moments_between_updates(tiny_model_dir):
    run = config(tiny_model_dir)
    shape = model_shape(run)
    full = estimate(run).learner_resident_bytes
    assert full == shape.params * 4 + shape.params * 4 * 2  # all layers trainable by default
    with_kl = RunConfig.from_dict({**run.to_dict(), "algorithm": {"kl_coef": 0.01}}).validate()
    assert estimate(with_kl).learner_resident_bytes == full + shape.params * 4  # the reference copy
