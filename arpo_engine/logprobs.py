"""Per-token log-probs (and entropies) of a sequence under a causal LM, in bounded memory (ARPO_SPEC.md §5).

The learner needs log p(x_{t+1} | x_{<=t}) for the policy, the old policy and the reference, and
per-token entropies for AEPO (§6) and metrics. With a 50k-150k vocabulary the (B, T, V) float32
logits dwarf the model's activations, so `token_logprobs` runs the model body once, then applies
the LM head to a bounded number of positions at a time. Under autograd each chunk is checkpointed:
only its hidden-state slice is kept, and its logits are recomputed during backward, so at most one
chunk of logits exists at any moment in either pass.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch.utils.checkpoint import checkpoint

DEFAULT_CHUNK_SIZE = 1024
"""Positions per LM-head chunk; peak extra memory is about chunk_size * V * 4 bytes (twice with entropy)."""


class TokenLogprobs(NamedTuple):
    logprobs: torch.Tensor
    """(B, T-1) log-prob of input_ids[:, 1:] given the tokens before it, float32."""
    entropies: torch.Tensor | None
    """(B, T-1) entropy in nats of the predictive distribution at each of those positions, or None."""


def logprobs_from_logits(
    logits: torch.Tensor, labels: torch.Tensor, *, with_entropy: bool = False
) -> TokenLogprobs:
    """Log-prob of `labels` under softmax(logits): (..., V), (...) -> (...), float32.

    log p(y) = z_y - logsumexp(z): the full log_softmax tensor is never formed, only one row reduction.
    """
    z = logits.float()  # (..., V)
    lse = torch.logsumexp(z, dim=-1)  # (...)
    logprobs = z.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - lse  # (...)
    if not with_entropy:
        return TokenLogprobs(logprobs, None)
    # H = lse - sum(p * z), one softmax instead of a second (..., V) log_softmax.
    entropies = lse - (torch.softmax(z, dim=-1) * z).sum(dim=-1)  # (...)
    return TokenLogprobs(logprobs, entropies)


def token_logprobs(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    position_ids: torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    temperature: float = 1.0,
    with_entropy: bool = False,
    select: torch.Tensor | None = None,
) -> TokenLogprobs:
    """Log-probs (B, T-1) of input_ids[:, 1:] under a Hugging Face causal LM, chunked over positions.

    `position_ids` default to the running count of attended tokens, so left-padded rows get the same
    positions as unpadded ones. `temperature` divides the logits, matching the sampler's distribution.
    Positions whose label is padding hold meaningless values: the caller's loss mask drops them.
    `select` (B, T-1, bool) limits the LM head to the positions the caller uses (the trained tokens);
    the others come back as 0. In agentic RL most positions are prompt and tool results, and the head
    (V x H per position) is a large share of a small model's compute, so this skips real work.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    _check_plain_head(model)
    if position_ids is None:
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
    body = model.base_model
    hidden = body(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
    ).last_hidden_state  # (B, T, H)
    batch, length = input_ids.shape
    hidden = hidden[:, :-1].reshape(batch * (length - 1), -1)  # (B*(T-1), H)
    labels = input_ids[:, 1:].reshape(-1)  # (B*(T-1),)
    picked: torch.Tensor | None = None
    if select is not None:
        if select.shape != (batch, length - 1):
            raise ValueError(f"select has shape {tuple(select.shape)}, expected {(batch, length - 1)}")
        picked = select.reshape(-1).nonzero().squeeze(-1)  # (P,)
        hidden, labels = hidden.index_select(0, picked), labels.index_select(0, picked)
    head = model.get_output_embeddings()

    def chunk(h: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = logprobs_from_logits(head(h) / temperature, y, with_entropy=with_entropy)
        # checkpoint wants tensors only; an empty entropy stands in for None.
        return out.logprobs, out.entropies if out.entropies is not None else out.logprobs.new_empty(0)

    recompute = torch.is_grad_enabled() and (hidden.requires_grad or head.weight.requires_grad)
    logprob_parts, entropy_parts = [], []
    for start in range(0, hidden.shape[0], chunk_size):
        h, y = hidden[start : start + chunk_size], labels[start : start + chunk_size]
        if recompute:
            lp, ent = checkpoint(chunk, h, y, use_reentrant=False)
        else:
            lp, ent = chunk(h, y)
        logprob_parts.append(lp)
        entropy_parts.append(ent)

    logprobs = _scatter(_join(logprob_parts, hidden), picked, batch, length - 1)
    if not with_entropy:
        return TokenLogprobs(logprobs, None)
    return TokenLogprobs(logprobs, _scatter(_join(entropy_parts, hidden), picked, batch, length - 1))


def _scatter(values: torch.Tensor, picked: torch.Tensor | None, rows: int, cols: int) -> torch.Tensor:
    """Back to (rows, cols): values sit at the flat positions `picked` (all positions when None), 0 elsewhere."""
    if picked is None:
        return values.view(rows, cols)
    full = values.new_zeros(rows * cols)
    return full.index_put((picked,), values).view(rows, cols)


def _join(parts: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    # A one-token sequence has no next token: return an empty float32 tensor instead of failing in cat.
    return torch.cat(parts) if parts else like.new_empty(0, dtype=torch.float32)


def _check_plain_head(model: Any) -> None:
    """Refuse models whose logits are not just lm_head(hidden): the chunked head would silently differ."""
    config = getattr(model, "config", None)
    for name in ("final_logit_softcapping", "logit_scale"):
        if getattr(config, name, None) not in (None, 1.0):
            raise ValueError(f"token_logprobs does not support models with {name} set")
