"""Token and window entropies for ARPO's branching signal (ARPO_SPEC.md §2).

Per-token entropy is exact where the logits are at hand (transformers sampler, learner) or a top-k
estimate from the log-probs vLLM returns. The estimate drops the tail of the distribution, so it is
a lower bound of the exact entropy. A window's entropy is the sum (official code) or mean of its
token entropies divided by ln|V|.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Exact entropy in nats of softmax(logits) over the last dim: (..., V) -> (...)."""
    import torch

    logits = logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def topk_entropy(logprobs: Iterable[float]) -> float:
    """Entropy estimate in nats from the log-probs of distinct tokens (a lower bound of the exact one)."""
    total = 0.0
    for lp in logprobs:
        if lp > -math.inf:
            total -= math.exp(lp) * lp
    return total


def window_entropy(
    entropies: Sequence[float], vocab_size: int, reduce: Literal["sum", "mean"] = "sum"
) -> float:
    """Normalised entropy of a window of token entropies: reduce(entropies) / ln|V|. Empty -> 0."""
    if not entropies:
        return 0.0
    total = float(sum(entropies))
    if reduce == "mean":
        total /= len(entropies)
    return total / math.log(vocab_size)
