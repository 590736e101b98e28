"""Build the configured Sampler (ARPO_SPEC.md §2): vLLM for speed, transformers for exact entropies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from arpo_engine.config import ModelConfig, RolloutConfig
from arpo_engine.models import resolve_model_path

if TYPE_CHECKING:  # both implement the Sampler protocol; the union also exposes update_weights
    from arpo_engine.rollout.hf_sampler import TransformersSampler
    from arpo_engine.rollout.vllm_sampler import VLLMSampler


def make_sampler(
    model: ModelConfig, rollout: RolloutConfig, *, seed: int, device: str = "auto", kv_cache_bytes: int | None = None
) -> TransformersSampler | VLLMSampler:
    """The sampler named by `rollout.sampler`, on the model `model.path` resolves to.

    `device` places the transformers sampler (the learner's device, since the learner trains its model);
    vLLM in this process takes the first visible GPU, or the CPU with the CPU build.
    """
    path = resolve_model_path(model.path)
    if rollout.sampler == "vllm":
        from arpo_engine.rollout.vllm_sampler import VLLMSampler

        return VLLMSampler(
            path,
            dtype=model.dtype,
            max_model_len=model.max_model_len,
            memory_fraction=rollout.memory_fraction,
            enable_prefix_caching=rollout.enable_prefix_caching,
            entropy_top_k=rollout.entropy_top_k,
            seed=seed,
            kv_cache_bytes=kv_cache_bytes,
        )
    if rollout.sampler == "transformers":
        from arpo_engine.device import resolve_device
        from arpo_engine.rollout.hf_sampler import TransformersSampler

        return TransformersSampler(
            path, dtype=model.dtype, max_model_len=model.max_model_len, seed=seed, device=resolve_device(device),
            max_batch_size=rollout.max_batch_size,
        )  # fmt: skip
    raise ValueError(f"unknown rollout.sampler {rollout.sampler!r} (known: vllm, transformers)")
