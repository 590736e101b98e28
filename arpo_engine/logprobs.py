"""Per-token log-probs (and entropies) of a sequence under a causal LM, in bounded memory (ARPO_SPEC.md §5).

The learner needs log p(x_{t+1} | x_{<=t}) for the policy, the old policy and the reference, and
per-token entropies for AEPO (§6) and metrics. With a 50k-150k vocabulary the (B, T, V) float32
logits dwarf the model's activations, so `token_logprobs` runs the model body once, then applies
the LM head to a bounded number of logits at a time (`head_logprobs`). Backward keeps no logits: the
fused head recomputes a chunk's logits and writes their gradient in place, so at most one chunk of
logits (and its softmax) exists at any moment in either pass.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, NamedTuple

import torch
from torch.utils.checkpoint import checkpoint

from arpo_engine.memory import chunk_rows


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
    chunk_size: int | None = None,
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
    logprob, entropy = head_logprobs(
        model, hidden, labels, temperature=temperature, with_entropy=with_entropy, chunk_size=chunk_size
    )
    logprobs = _scatter(logprob, picked, batch, length - 1)
    if entropy is None:
        return TokenLogprobs(logprobs, None)
    return TokenLogprobs(logprobs, _scatter(entropy, picked, batch, length - 1))


def head_logprobs(
    model: Any,
    hidden: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 1.0,
    with_entropy: bool = False,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (and entropies) of `labels` (N,) from hidden states (N, H) through the model's LM head.

    Chunks of `chunk_size` positions (default `memory.chunk_rows(V)`, a bounded number of logits). A plain
    linear head goes through `_FusedHead`, which keeps no logits for backward; any other head (a wrapped
    one) is checkpointed chunk by chunk, its logits recomputed by autograd in backward.
    """
    head = model.get_output_embeddings()
    size = chunk_size if chunk_size is not None else chunk_rows(int(head.weight.shape[0]))
    if size < 1:
        raise ValueError("chunk_size must be at least 1")
    if type(head) is torch.nn.Linear:
        lp, ent = _FusedHead.apply(hidden, head.weight, head.bias, labels, temperature, with_entropy, size)
        return lp, ent if with_entropy else None

    def chunk(h: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = logprobs_from_logits(head(h) / temperature, y, with_entropy=with_entropy)
        # checkpoint wants tensors only; an empty entropy stands in for None.
        return out.logprobs, out.entropies if out.entropies is not None else out.logprobs.new_empty(0)

    recompute = torch.is_grad_enabled() and (hidden.requires_grad or head.weight.requires_grad)
    logprob_parts, entropy_parts = [], []
    for start in range(0, hidden.shape[0], size):
        h, y = hidden[start : start + size], labels[start : start + size]
        lp, ent = checkpoint(chunk, h, y, use_reentrant=False) if recompute else chunk(h, y)
        logprob_parts.append(lp)
        entropy_parts.append(ent)
    logprobs = _join(logprob_parts, hidden)
    return logprobs, _join(entropy_parts, hidden) if with_entropy else None


class _FusedHead(torch.autograd.Function):
    """LM head, log-softmax and entropy chunk by chunk, with the gradient written out by hand.

    With z = (h W^T + b) / T, p = softmax(z), lse = logsumexp(z) and m = sum(p z) = lse - H:
        d log p(y) / dz = onehot(y) - p        d H / dz = -p (z - m)
    so for upstream gradients a (log-probs) and e (entropies) dz = a onehot(y) - p (a + e (z - m)).
    Forward keeps h, W, the labels, lse and m; backward recomputes a chunk's logits once and turns them
    into dz in place, so a chunk holds two logits-sized tensors in backward (autograd's own graph of
    the same computation held about eight) and its logits are computed twice in all, not three times.
    Autocast (bf16) applies to the head's matrix products in both passes, as it would without fusing.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        labels: torch.Tensor,
        temperature: float,
        with_entropy: bool,
        size: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        kind = hidden.device.type
        ctx.autocast = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None
        ctx.temperature, ctx.size = temperature, size
        logprobs, lses, means = [], [], []
        for start in range(0, hidden.shape[0], size):
            z = _logits(hidden[start : start + size], weight, bias, temperature)  # (n, V) float32
            lse = torch.logsumexp(z, dim=-1)
            logprobs.append(z.gather(-1, labels[start : start + size, None]).squeeze(-1) - lse)
            lses.append(lse)
            if with_entropy:
                p = torch.softmax(z, dim=-1)
                means.append(p.mul_(z).sum(dim=-1))  # m = sum(p z); H = lse - m
        lse = _join(lses, hidden)
        logprob = _join(logprobs, hidden)
        mean = _join(means, hidden) if with_entropy else lse
        ctx.save_for_backward(hidden, weight, bias, labels, lse, mean)
        return logprob, (lse - mean) if with_entropy else logprob.new_empty(0)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_logprob: torch.Tensor | None, grad_entropy: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        hidden, weight, bias, labels, lse, mean = ctx.saved_tensors
        want_h, want_w, want_b = ctx.needs_input_grad[:3]
        grad_h = torch.zeros_like(hidden) if want_h else None
        grad_w = torch.zeros_like(weight) if want_w else None
        grad_b = torch.zeros_like(bias) if want_b and bias is not None else None
        if grad_logprob is None:
            grad_logprob = torch.zeros_like(lse)
        use_entropy = grad_entropy is not None and grad_entropy.numel() > 0
        autocast = (
            torch.autocast(hidden.device.type, dtype=ctx.autocast) if ctx.autocast is not None else nullcontext()
        )
        with autocast:
            for start in range(0, hidden.shape[0], ctx.size):
                end = start + ctx.size
                h, y, a = hidden[start:end], labels[start:end], grad_logprob[start:end, None]
                z = _logits(h, weight, bias, ctx.temperature)
                p = torch.sub(z, lse[start:end, None]).exp_()  # softmax from the saved logsumexp
                if use_entropy:
                    assert grad_entropy is not None
                    dz = z.sub_(mean[start:end, None]).mul_(grad_entropy[start:end, None]).add_(a).mul_(p)
                    del p
                else:
                    del z
                    dz = p.mul_(a)
                dz.neg_().scatter_add_(-1, y[:, None], a).div_(ctx.temperature)  # now d/d(h W^T + b)
                if grad_h is not None:
                    grad_h[start:end] = (dz @ weight).to(hidden.dtype)
                if grad_w is not None:
                    grad_w += (dz.t() @ h).to(weight.dtype)
                if grad_b is not None:
                    grad_b += dz.sum(dim=0).to(bias.dtype)
        return grad_h, grad_w, grad_b, None, None, None, None


def _logits(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, temperature: float) -> torch.Tensor:
    return torch.nn.functional.linear(h, weight, bias).float() / temperature


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
