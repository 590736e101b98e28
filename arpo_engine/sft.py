"""SFT cold start on tool-use demonstrations, tool results masked (ARPO_SPEC.md §5).

Without it a small model never calls a tool and RL has no signal. Each demonstration is tokenised the
way the rollout loop builds a sequence: the prompt through the chat template with the run's generated
system prompt, then the assistant trajectory piece by piece — model text (mask 1) and tool results
(mask 0) tokenised separately, the way the loop appends them — then EOS. So the model is trained on
exactly the token sequences it will later sample and read.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from arpo_engine.config import SFTConfig
from arpo_engine.learner import TrainSequence, pad_sequences
from arpo_engine.logprobs import token_logprobs
from arpo_engine.rollout.agent import build_prompt_ids
from arpo_engine.rollout.formats import CallFormat, rerender_result


@dataclass
class SFTExample:
    prompt_ids: list[int]
    response_ids: list[int]
    mask: list[int]


def encode_demo(
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    spans: Sequence[Sequence[int]],
    system_prompt: str,
    call_format: CallFormat | None = None,
) -> SFTExample:
    """Prompt = every message before the final assistant turn; response = that turn, spans masked.

    With `call_format`, each tool result is re-rendered the way the rollout renders it (for `hermes`,
    where the model's chat template puts tool messages), so SFT and RL see the same protocol.
    """
    if not messages or messages[-1].get("role") != "assistant":
        raise ValueError("a demonstration must end with an assistant message")
    prompt = [m for m in messages[:-1] if m.get("role") != "system"]
    text = str(messages[-1]["content"])
    response: list[int] = []
    mask: list[int] = []
    cursor = 0
    for start, end in sorted((int(s), int(e)) for s, e in spans):
        result = text[start:end] if call_format is None else rerender_result(call_format, text[start:end])
        for piece, m in ((text[cursor:start], 1), (result, 0)):
            if piece:
                ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
                response.extend(ids)
                mask.extend([m] * len(ids))
        cursor = end
    tail = tokenizer(text[cursor:], add_special_tokens=False)["input_ids"] if text[cursor:] else []
    response.extend([*tail, tokenizer.eos_token_id])
    mask.extend([1] * (len(tail) + 1))
    prompt_ids, _ = build_prompt_ids(tokenizer, prompt, system_prompt)
    return SFTExample(prompt_ids, response, mask)


def sft_loss(model: Any, batch: Sequence[SFTExample], pad_id: int) -> tuple[torch.Tensor, int]:
    """Token-mean negative log-likelihood over the masked-in response tokens of a batch."""
    rows = [TrainSequence(0, e.prompt_ids, e.response_ids, e.mask, [0.0] * len(e.mask)) for e in batch]
    padded = pad_sequences(rows, pad_id)
    logprobs = token_logprobs(model, padded.input_ids, padded.attention_mask).logprobs  # (B, T-1)
    count = int(padded.mask.sum())
    loss = -(torch.where(padded.mask.bool(), logprobs, 0.0)).sum() / max(count, 1)
    return loss, count


def run_sft(
    model: Any,
    examples: Sequence[SFTExample],
    cfg: SFTConfig,
    *,
    pad_id: int,
    seed: int = 0,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[dict[str, float]]:
    """Train on the demonstrations for cfg.epochs passes; returns per-update metrics."""
    if not examples:
        raise ValueError("SFT needs at least one demonstration")
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.0
    )
    rng = random.Random(seed)
    order = list(range(len(examples)))
    total_updates = max(1, math.ceil(cfg.epochs * len(examples) / cfg.batch_size))
    history: list[dict[str, float]] = []
    model.train()
    position = len(order)
    for update in range(1, total_updates + 1):
        if should_stop():
            break
        if position + cfg.batch_size > len(order):
            rng.shuffle(order)
            position = 0
        batch = [examples[i] for i in order[position : position + cfg.batch_size]]
        position += cfg.batch_size
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss, tokens = sft_loss(model, batch, pad_id)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        elapsed = time.perf_counter() - started
        metrics = {
            "sft/loss": float(loss.detach()),
            "grad/norm": float(norm),
            "sft/tokens": float(tokens),
            "throughput/train_tok_s": sum(len(e.prompt_ids) + len(e.response_ids) for e in batch) / elapsed,
        }
        history.append(metrics)
        if on_step is not None:
            on_step(update, metrics)
    model.eval()
    return history
