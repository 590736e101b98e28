"""A small random Llama and a toy RL batch, shared by the learner and LoRA tests."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from arpo_engine.learner import TrainSequence

VOCAB = 300


def small_llama(seed: int = 0, *, layers: int = 3, head_dim: int = 8) -> LlamaForCausalLM:
    """Three blocks of width 32 with tied embeddings, like SmolLM2, in eval mode (FlexAttention needs head_dim >= 16)."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=True,
        head_dim=head_dim,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def toy_batch(seed: int = 0, *, lengths: tuple[int, int] = (14, 14)) -> list[TrainSequence]:
    """Two prompts x two paths with opposite advantages; responses hold a masked tool-result stretch."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for prompt in range(2):
        prompt_ids = torch.randint(0, VOCAB, (5 + prompt,), generator=gen).tolist()
        for path, n in enumerate(lengths):
            response = torch.randint(0, VOCAB, (n,), generator=gen).tolist()
            mask = [1] * 4 + [0] * 4 + [1] * (n - 8)
            out.append(TrainSequence(prompt, prompt_ids, response, mask, [1.0 if path == 0 else -1.0] * n))
    return out
