"""What a run needs, sized from its config: KV cache, learner memory, CPUs and GPUs (no torch imported).

The service asks Ray for `estimate(config).ray_resources()` before it starts a run, and the vLLM
sampler sizes its KV cache with `kv_cache_bytes(config)` instead of a fixed fraction of RAM or GPU
memory. The worst case of a step: every path of every prompt decoding at once, each at its full
response budget (tool results count in it) plus a part-filled block. With prefix caching a prompt's
paths share its blocks, and a fork shares its parent's up to the boundary, so a prompt needs at most
max_prompt_tokens + M x (max_response_tokens + a block); without it every path holds its own prompt.
Sized so, the cache never has to preempt a request (which would re-run it), and it is a few percent
of what a fixed fraction of RAM gave. The greedy evaluation (one path per prompt, more prompts) may
need more; vLLM then queues its excess requests, which costs time, not correctness. The model's shape
comes from its config.json.

Learner bytes: fp32 weights; fp32 gradients and two AdamW moments for the trainable share; a
reference copy when the KL term needs one; activations of one micro-batch (per token and layer about
`ACTIVATION_FACTOR` x hidden floats kept for backward, one layer's worth with activation checkpointing,
plus `ACTIVATION_TRANSIENT`); one LM-head chunk of logits. These are estimates to request resources
with, fitted to measurements of SmolLM2-135M on the CPU (bench/update_memory.py, bench/memory.py).

A run's peak: on the CPU, a run in one process frees vLLM's KV cache and weights for each update (the
sync that follows reloads them), so its peak is the larger of the rollout (sampler, and the learner's
weights and AdamW moments) and the update (the whole learner). Elsewhere the two add up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arpo_engine.config import RunConfig

KV_HEADROOM = 1.1
"""Extra KV cache over the step's worst case, for prompts whose first blocks are computed side by side."""
KV_BLOCK = 32
"""Tokens per KV block (vLLM's CPU build takes 32 at least, GPUs default to 16): a path's last block is
part-filled."""
RUNTIME_BYTES = 1_500 << 20
"""Python, torch, tokenizers and vLLM's own buffers in one process, measured at about 1.2-1.5 GB here."""
ACTIVATION_FACTOR = 23
"""fp32 floats of `hidden` size kept per token and trainable layer for backward (attention + MLP)."""
ACTIVATION_TRANSIENT = 34
"""fp32 floats of `hidden` size per token alive on top of the kept ones at the update's peak: one block's
backward temporaries, the frozen blocks' forward and the allocator's fragmentation. Both constants are
fitted to one demo-sized update with and without checkpointing (bench/update_memory.py: the
update added 4,735 MB and 1,753 MB over 8,192-token micro-batches of SmolLM2-135M, top 8 blocks)."""
VLLM_CPU_WEIGHT_FACTOR = 1.42
"""vLLM's CPU build holds its weights about 1.4 times: the embedding stays a parameter for lookups while
oneDNN keeps its own repacked copy of every linear layer, the tied LM head's included (releasing the
demo model's 513 MB of fp32 weights gave 729 MB back; VLLMSampler.release_memory)."""
LOGIT_CHUNK_ELEMENTS = 1 << 24
"""Logits per LM-head chunk in the learner (64 MB in fp32; arpo_engine.logprobs.head_logprobs).

Sized in logits, not positions, so a large vocabulary gets fewer positions per chunk. With autograd's own
graph for the head, 1,024 positions at V = 49k held 1.5 GB of live tensors in one update's backward, the
largest single item of its peak; the fused head (`LOGIT_COPIES`) and 341 positions hold about 200 MB."""
LOGIT_COPIES = 3
"""Chunk-sized tensors alive at once in an LM-head chunk's backward: the logits and softmax that
`logprobs._FusedHead` recomputes, and a gradient matrix (autograd's own graph held about eight)."""


def chunk_rows(vocab: int) -> int:
    """Positions per LM-head chunk for a vocabulary of `vocab` (341 at V = 49,152)."""
    return max(1, LOGIT_CHUNK_ELEMENTS // max(1, vocab))

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
    """vLLM: weights in model.dtype (`VLLM_CPU_WEIGHT_FACTOR` times on the CPU) plus the KV cache."""
    learner_bytes: int
    """At the update's peak: weights, gradients, AdamW moments, activations, a chunk of logits."""
    learner_resident_bytes: int
    """Between updates: weights, the AdamW moments and a reference model (gradients are freed)."""
    runtime_bytes: int
    cpus: int
    gpus: int
    sampler_released_for_update: bool = False
    """vLLM's cache and weights are freed while the learner updates (CPU, one process)."""

    @property
    def total_bytes(self) -> int:
        if self.sampler_released_for_update:
            rollout = self.sampler_bytes + self.learner_resident_bytes
            return max(rollout, self.learner_bytes) + self.runtime_bytes
        return self.sampler_bytes + self.learner_bytes + self.runtime_bytes

    def ray_resources(self) -> dict[str, Any]:
        """Keyword arguments for `ray.remote(...).options(...)`: num_cpus, num_gpus, memory (bytes)."""
        return {"num_cpus": self.cpus, "num_gpus": self.gpus, "memory": self.total_bytes}


def model_shape(config: RunConfig) -> ModelShape:
    from arpo_engine.models import BUNDLED, model_dir

    path = model_dir(config.model.path) if config.model.path in BUNDLED else Path(config.model.path)
    return ModelShape.from_config_file(path / "config.json")


def kv_cache_tokens(config: RunConfig) -> int:
    """Tokens of KV cache a step needs at most (see the module docstring), with `KV_HEADROOM`; at least
    one full context."""
    r, max_len = config.rollout, config.model.max_model_len
    prompt = min(config.data.max_prompt_tokens, max_len)
    per_path = min(r.max_response_tokens, max_len - 1) + KV_BLOCK
    shared = r.enable_prefix_caching  # a prompt's paths share its blocks, a fork its parent's
    per_prompt = prompt + r.group_size * per_path if shared else r.group_size * (prompt + per_path)
    return max(int(config.optim.train_batch_prompts * per_prompt * KV_HEADROOM), max_len)


def kv_cache_bytes(config: RunConfig, shape: ModelShape | None = None) -> int:
    """`kv_cache_tokens` in bytes: keys and values of every layer, in the sampler's dtype."""
    shape = shape or model_shape(config)
    per_token = 2 * shape.layers * shape.kv_heads * shape.head_dim * _DTYPE_BYTES[config.model.dtype]
    return kv_cache_tokens(config) * per_token


def _trainable_layers(config: RunConfig, shape: ModelShape) -> int:
    o = config.optim
    return shape.layers if o.trainable_layers <= 0 else min(o.trainable_layers, shape.layers)


def _trainable_params(config: RunConfig, shape: ModelShape) -> int:
    if config.optim.lora_rank > 0:
        return int(shape.params * 0.01)
    return int(shape.params * _trainable_layers(config, shape) / shape.layers)


def learner_resident_bytes(config: RunConfig, shape: ModelShape | None = None) -> int:
    """What the learner holds between updates: fp32 weights, two AdamW moments of the trainable share, and
    the reference copy when the KL term needs one."""
    shape = shape or model_shape(config)
    weights = shape.params * 4
    reference = weights if config.algorithm.kl_coef > 0 and config.optim.lora_rank <= 0 else 0
    return weights + _trainable_params(config, shape) * 4 * 2 + reference


def learner_bytes(config: RunConfig, shape: ModelShape | None = None) -> int:
    """At the update's peak: what it holds between updates, plus gradients, activations and logits."""
    shape = shape or model_shape(config)
    o = config.optim
    trainable_layers = _trainable_layers(config, shape)
    gradients = _trainable_params(config, shape) * 4
    kept_layers = 1 if o.activation_checkpointing else trainable_layers
    per_token = ACTIVATION_FACTOR * kept_layers + trainable_layers + ACTIVATION_TRANSIENT
    activations = o.micro_batch_tokens * shape.hidden * 4 * per_token
    logits = chunk_rows(shape.vocab) * shape.vocab * 4 * LOGIT_COPIES
    return learner_resident_bytes(config, shape) + gradients + activations + logits


def estimate(config: RunConfig, *, gpu: bool = False) -> MemoryEstimate:
    """Bytes, CPUs and GPUs one run needs; `gpu`: the machine has CUDA (devices left at `auto` use it)."""
    shape = model_shape(config)
    kv = kv_cache_bytes(config, shape)
    sampler_on_gpu = gpu or config.rollout.device.startswith("cuda")  # vLLM's CUDA build, wherever it is put
    weights = shape.params * _DTYPE_BYTES[config.model.dtype] * (1 if sampler_on_gpu else VLLM_CPU_WEIGHT_FACTOR)
    sampler = kv + int(weights) if config.rollout.sampler == "vllm" else 0
    on_gpu = {d for d in (config.optim.device, config.rollout.device) if d.startswith("cuda") or (gpu and d == "auto")}
    gpus = 0 if not on_gpu else max(1, len({"cuda:0" if d in ("auto", "cuda") else d for d in on_gpu}))
    return MemoryEstimate(
        kv_cache_bytes=kv,
        sampler_bytes=sampler,
        learner_bytes=learner_bytes(config, shape),
        learner_resident_bytes=learner_resident_bytes(config, shape),
        runtime_bytes=RUNTIME_BYTES,
        cpus=max(2, min(8, config.rollout.tool_concurrency // 2)),
        gpus=gpus,
        # arpo_engine.rollout.vllm_sampler.VLLMSampler.release_memory, called by the one-process trainer
        sampler_released_for_update=(
            config.rollout.sampler == "vllm" and not sampler_on_gpu and not config.distributed.enabled
        ),
    )
