"""Requests sent ahead of the decision that may want them; what is sampled does not change (ARPO_SPEC.md §2).

A path's first request is named and seeded by the path's key (`seeding.py`), so it samples the same
whenever it is sent. The agent loop sends two kinds ahead, where the sampler batches continuously:
- a fork's first segment, with its parent's continuation after tool result t: a fork that the decision
  at t grants then starts with its parent instead of k tokens (the entropy window) later;
- a supplement that is likely but not yet certain: free slots less the forks expected if every open
  decision forks with the base probability α (`group_state.likely_supplements`).
A request sent ahead only decodes: if its segment ends before its path exists, the result waits, and no
tool runs for a path that may never be (tool calls are what ARPO saves; some tools have side effects).
When the path is created its first request is adopted as it stands; when the path can no longer be
created, the request is aborted. The compute spent on those is counted (`rollout/ahead_*`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from arpo_engine.rollout.sampler import GenRequest, GenResult

SIDE_EFFECT_FREE_KINDS = frozenset({"python", "search", "calculator"})
"""Tool kinds whose calls touch nothing outside their own sandbox or process (python runs in a fresh
sandbox without network; search reads a local corpus): a call for a path that is then dropped only
costs its compute. `http` posts to someone's endpoint, so it is never called ahead."""


@runtime_checkable
class AbortSampler(Protocol):
    """A sampler that can drop some pending requests and go on with the others (vLLM, scripted)."""

    def abort(self, keys: Iterable[str]) -> None:
        """Forget these pending requests; unknown keys are ignored."""
        ...


@dataclass
class _Ahead:
    request: GenRequest
    result: GenResult | None = None


class Speculation:
    """The requests sent ahead, by the key their path's first request will have."""

    def __init__(self, sampler: Any, *, temperature: float, top_p: float) -> None:
        self.sampler, self.temperature, self.top_p = sampler, temperature, top_p
        self.ahead: dict[str, _Ahead] = {}
        self.sent = 0
        self.adopted = 0
        self.discarded_tokens = 0
        """Tokens decoded for requests dropped after they ended (an aborted one's are not known)."""
        self.aborted: set[str] = set()
        """Dropped while decoding: the sampler may still return one that ended in the step it was dropped in."""

    def send(self, key: str, request: GenRequest) -> None:
        if key in self.ahead:
            return
        self.ahead[key] = _Ahead(request)
        self.sent += 1
        self.sampler.submit(key, request, temperature=self.temperature, top_p=self.top_p)

    def finished(self, key: str, result: GenResult) -> bool:
        """Keep the result of a request sent ahead; False when the key is not one."""
        if key in self.aborted:
            self.aborted.discard(key)
            self.discarded_tokens += len(result.token_ids)
            return True
        ahead = self.ahead.get(key)
        if ahead is None:
            return False
        ahead.result = result
        return True

    def adopt(self, key: str, request: GenRequest) -> tuple[bool, GenResult | None]:
        """(sent ahead, its result if it has ended) for the request a new path is about to send."""
        ahead = self.ahead.pop(key, None)
        if ahead is None:
            return False, None
        if ahead.request != request:
            raise RuntimeError(f"request {key} was sent ahead with other parameters than its path's")
        self.adopted += 1
        return True, ahead.result

    def drop(self, keys: Iterable[str]) -> None:
        """These will never be wanted: abort the ones still decoding, forget the others."""
        running = []
        for key in keys:
            ahead = self.ahead.pop(key, None)
            if ahead is None:
                continue
            if ahead.result is None:
                running.append(key)
            else:
                self.discarded_tokens += len(ahead.result.token_ids)
        if running:
            self.sampler.abort(running)
            self.aborted.update(running)

    def pending_keys(self) -> list[str]:
        return list(self.ahead)

    def metrics(self) -> dict[str, float]:
        return {
            "rollout/ahead_sent": float(self.sent),
            "rollout/ahead_discarded": float(self.sent - self.adopted),
            "rollout/ahead_discarded_tokens": float(self.discarded_tokens),
        }
