"""The sampler protocol: token ids in, token ids plus per-token entropies out.

The agent loop works on token ids end to end ("token in, token out") so the trained sequence is
exactly the sampled one; samplers never re-tokenise a context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class GenRequest:
    prompt_ids: list[int]
    """The whole context so far: prompt, earlier model segments and tool results."""
    max_tokens: int
    stop: tuple[str, ...] = ()
    """Generation ends after the first of these strings appears; it stays in the output."""
    seed: int | None = None
    """Per-request seed, so a request's sample does not depend on its batch neighbours."""


@dataclass(frozen=True)
class GenResult:
    token_ids: list[int]
    text: str
    """Decoded `token_ids`."""
    entropies: list[float]
    """Per generated token, in nats: exact, or the top-k estimate (a lower bound of the exact value)."""
    finish_reason: Literal["eos", "stop", "length"]
    stop_str: str | None = None
    """The stop string that ended generation, when finish_reason is `stop`."""


class Sampler(Protocol):
    tokenizer: Any
    """A Hugging Face tokenizer with a chat template."""
    vocab_size: int
    """|V| of the model's output layer, used to normalise window entropies by ln|V|."""
    entropy_estimator: str
    """`exact` or `topk-<k>`; recorded with every rollout group."""

    def generate(
        self, requests: Sequence[GenRequest], *, temperature: float, top_p: float
    ) -> list[GenResult]:
        """Sample one continuation per request, batched; results are in request order."""
        ...

    def close(self) -> None:
        """Free the engine (processes, memory)."""
        ...
