"""The sampler protocol: token ids in, token ids plus per-token entropies out.

The agent loop works on token ids end to end ("token in, token out") so the trained sequence is
exactly the sampled one; samplers never re-tokenise a context.

Two ways to drive a sampler:
- `generate(requests)`: one blocking batch, results in request order.
- `submit(key, request)` … `step()`: the streaming interface the agent loop uses. `submit` queues a
  request under a caller-chosen key and returns at once; each `step()` advances decoding by one unit of
  work (one engine iteration on vLLM) and returns the `(key, result)` pairs that finished in it. A
  request submitted between two steps joins the running batch, so a path whose tool call returned
  can go on without waiting for the other paths' segments. Samplers without continuous batching
  decode everything queued as one batch per step (`BatchQueue`) and say so in `continuous_batching`.

A request may ask for its entropy window (`GenRequest.window`): a sampler that streams (`WindowSampler`)
then hands the entropies of its first `window` tokens to `take_windows()` as soon as they are decoded,
while the request goes on. ARPO's branch decision after a tool result needs only those (ARPO_SPEC.md §2),
so a fork can start long before the segment it is decided in has ended. The result is the same either way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable


@dataclass(frozen=True)
class GenRequest:
    prompt_ids: list[int]
    """The whole context so far: prompt, earlier model segments and tool results."""
    max_tokens: int
    stop: tuple[str, ...] = ()
    """Generation ends after the first of these strings appears; it stays in the output."""
    seed: int | None = None
    """Per-request seed, so a request's sample does not depend on its batch neighbours."""
    window: int = 0
    """Report the entropies of the first `window` generated tokens early (`WindowSampler`); 0: do not."""


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


Finished = tuple[str, GenResult]
"""A request's key, as given to `submit`, and its result."""
Window = tuple[str, list[float]]
"""A request's key and the entropies of its first `window` tokens, reported while it goes on decoding."""


class Sampler(Protocol):
    tokenizer: Any
    """A Hugging Face tokenizer with a chat template."""
    vocab_size: int
    """|V| of the model's output layer, used to normalise window entropies by ln|V|."""
    entropy_estimator: str
    """`exact` or `topk-<k>`; recorded with every rollout group."""
    continuous_batching: bool
    """True when a request submitted between steps joins the running batch (vLLM). False when a step
    decodes whatever is queued, to the end, as one batch: a caller then gathers all it can before
    stepping, because a request submitted just after a step waits for the whole next batch anyway."""

    def generate(self, requests: Sequence[GenRequest], *, temperature: float, top_p: float) -> list[GenResult]:
        """Sample one continuation per request, batched; results are in request order."""
        ...

    def submit(self, key: str, request: GenRequest, *, temperature: float, top_p: float) -> None:
        """Queue one request under `key` (unique among pending requests); returns without decoding."""
        ...

    def step(self) -> list[Finished]:
        """Advance decoding by one unit of work; return the requests that finished in it.

        Returns [] at once when nothing is pending. A request's result does not depend on when it was
        submitted or what ran beside it (per-request seeds).
        """
        ...

    def pending(self) -> int:
        """Requests submitted and not yet returned by `step`."""
        ...

    def cancel(self) -> None:
        """Drop every pending request (a rollout that failed half-way must not leave work behind)."""
        ...

    def close(self) -> None:
        """Free the engine (processes, memory)."""
        ...


@runtime_checkable
class WindowSampler(Protocol):
    """A sampler that reports entropy windows before their request ends (vLLM; the scripted sampler)."""

    def take_windows(self) -> list[Window]:
        """Windows reached by the steps since the last call, each once. A request that ends within its
        window, or in the step that reaches it, reports nothing here: its result has the entropies."""
        ...


def check_sampling(temperature: float, top_p: float) -> None:
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"bad sampling parameters: temperature={temperature}, top_p={top_p}")


def response_budget(request: GenRequest, max_model_len: int) -> int:
    """Tokens the request may generate: its max_tokens, cut to what the context window leaves."""
    n = len(request.prompt_ids)
    if n == 0:
        raise ValueError("a generation request needs at least one prompt token")
    if request.max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {request.max_tokens}")
    if n >= max_model_len:
        raise ValueError(f"prompt of {n} tokens leaves no room within max_model_len={max_model_len}")
    return min(request.max_tokens, max_model_len - n)


Generate = Callable[..., list[GenResult]]


class BatchQueue:
    """The streaming interface for a sampler whose one primitive is a batched `generate`.

    A step decodes everything queued: one `generate` call per sampling setting, results returned in
    submission order. Per-request seeds make each result independent of what it was batched with.
    """

    def __init__(self) -> None:
        self._items: dict[str, tuple[GenRequest, float, float]] = {}

    def add(self, key: str, request: GenRequest, temperature: float, top_p: float) -> None:
        check_sampling(temperature, top_p)
        if key in self._items:
            raise ValueError(f"a request with key {key!r} is already pending")
        self._items[key] = (request, temperature, top_p)

    def run(self, generate: Generate) -> list[Finished]:
        items, self._items = self._items, {}
        by_setting: dict[tuple[float, float], list[str]] = {}
        for key, (_, temperature, top_p) in items.items():
            by_setting.setdefault((temperature, top_p), []).append(key)
        results: dict[str, GenResult] = {}
        for (temperature, top_p), keys in by_setting.items():
            outs = generate([items[k][0] for k in keys], temperature=temperature, top_p=top_p)
            results.update(zip(keys, outs, strict=True))
        return [(key, results[key]) for key in items]

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
