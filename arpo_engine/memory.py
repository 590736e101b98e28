"""What a run needs, sized from its config: KV cache, learner memory, CPUs and GPUs (no torch imported).

The service asks Ray for `estimate(config).ray_resources()` before it starts a run, and the vLLM
sampler sizes its KV cache with `kv_cache_bytes(config)` instead of a fixed fraction of RAM or GPU
memory: every path of a step decodes at once (train_batch_prompts x M paths), each at most
max_prompt_tokens + max_response_tokens long, plus headroom. Prefix caching makes forks share their
prefix's blocks, so this is an upper bound for ARPO. The model's shape comes from its config.json.

Learner bytes: fp32 weights; fp32 gradients and two AdamW moments for the trainable share; a
reference copy when the KL term needs one; activations of one micro-batch (per token and layer about
`ACTIVATION_FACTOR` x hidden floats kept for backward, one layer's worth with activation checkpointing);
one LM-head chunk of logits. These are estimates to request resources with, not measurements.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arpo_engine.config import RunConfig

KV_HEADROOM = 1.25
"""Extra KV cache over the batch's worst case: block rounding, the greedy eval batch, preemption slack."""
RUNTIME_BYTES = 1_500 << 20
"""Python, torch, tokenizers and vLLM's own buffers in one process, measured at about 1.2-1.5 GB here."""
ACTIVATION_FACTOR = 20
"""fp32 floats of `hidden` size kept per token and trainable layer for backward (attention + MLP, roughly)."""
LOGIT_CHUNK = 1024
"""Positions per LM-head chunk in the learner (arpo_engine.logprobs.DEFAULT_CHUNK_SIZE)."""
_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class ModelShape:
    params: int
    layers: int
    hidden: int
    kv_heads: int
    head_dim: int
    vocab: int

    @classmethod
    def from_config_file(cls, path: Path) -> ModelShape:
        c = json.loads(Path(path).read_text())
        hidden, layers, vocab = int(c["hidden_size"]), int(c["num_hidden_layers"]), int(c["vocab_size"])
        heads = int(c["num_attention_heads"])
        kv_heads = int(c.get("num_key_value_heads") or heads)
        head_dim = int(c.get("head_dim") or hidden // heads)
        inter = int(c.get("intermediate_size") or 4 * hidden)
        per_layer = hidden * (heads * head_dim) * 2 + hidden * kv_heads * head_dim * 2 + 3 * hidden * inter
        embed = vocab * hidden * (1 if c.get("tie_word_embeddings", True) else 2)
        return cls(per_layer * layers + embed, layers, hidden, kv_heads, head_dim, vocab)


@dataclass(frozen=True)
class MemoryEstimate:
    kv_cache_bytes: int
    sampler_bytes: int
    """vLLM: weights in model.dtype plus the KV cache."""
    learner_bytes: int
    runtime_bytes: int
    cpus: int
    gpus: int

    @property
    def total_bytes(self) -> int:
        return self.sampler_bytes + self.learner_bytes + self.runtime_bytes

    def ray_resources(self) -> dict[str, Any]:
        """Keyword arguments for `ray.remote(...).options(...)`: num_cpus, num_gpus, memory (bytes)."""
        return {"num_cpus": self.cpus, "num_gpus": self.gpus, "memory": self.total_bytes}


def model_shape(config: RunConfig) -> ModelShape:
    from arpo_engine.models import BUNDLED, model_dir

    path = model_dir(config.model.path) if config.model.path in BUNDLED else Path(config.model.path)
    return ModelShape.from_config_file(path / "config.json")


def kv_cache_bytes(config: RunConfig, shape: ModelShape | None = None) -> int:
    """KV cache for every path of a step decoding at once, with `KV_HEADROOM`; at least one full context."""
    shape = shape or model_shape(config)
    r = config.rollout
    per_token = 2 * shape.layers * shape.kv_heads * shape.head_dim * _DTYPE_BYTES[config.model.dtype]
    context = min(config.data.max_prompt_tokens + r.max_response_tokens, config.model.max_model_len)
    paths = config.optim.train_batch_prompts * r.group_size
    return int(max(paths * context * KV_HEADROOM, config.model.max_model_len) * per_token)


def learner_bytes(config: RunConfig, shape: ModelShape | None = None) -> int:
    shape = shape or model_shape(config)
    o = config.optim
    trainable_layers = shape.layers if o.trainable_layers <= 0 else min(o.trainable_layers, shape.layers)
    share = trainable_layers / shape.layers
    trainable = int(shape.params * share) if o.lora_rank <= 0 else int(shape.params * 0.01)
    weights = shape.params * 4
    optimizer = trainable * 4 * 3  # gradient + two AdamW moments
    reference = weights if config.algorithm.kl_coef > 0 and o.lora_rank <= 0 else 0
    kept_layers = 1 if o.activation_checkpointing else trainable_layers
    activations = o.micro_batch_tokens * shape.hidden * 4 * (ACTIVATION_FACTOR * kept_layers + trainable_layers)
    logits = LOGIT_CHUNK * shape.vocab * 4 * 3
    return weights + optimizer + reference + activations + logits


def estimate(config: RunConfig, *, gpu: bool = False) -> MemoryEstimate:
    """Bytes, CPUs and GPUs one run needs; `gpu`: the machine has CUDA (devices left at `auto` use it)."""
    shape = model_shape(config)
    kv = kv_cache_bytes(config, shape)
    sampler = kv + shape.params * _DTYPE_BYTES[config.model.dtype] if config.rollout.sampler == "vllm" else 0
    on_gpu = {d for d in (config.optim.device, config.rollout.device) if d.startswith("cuda") or (gpu and d == "auto")}
    gpus = 0 if not on_gpu else max(1, len({"cuda:0" if d in ("auto", "cuda") else d for d in on_gpu}))
    return MemoryEstimate(
        kv_cache_bytes=kv,
        sampler_bytes=sampler,
        learner_bytes=learner_bytes(config, shape),
        runtime_bytes=RUNTIME_BYTES,
        cpus=max(2, min(8, config.rollout.tool_concurrency // 2)),
        gpus=gpus,
    )
