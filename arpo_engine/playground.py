"""The playground: one question answered by a model with its tools, streamed as it happens (issue 10).

The same agent loop as training and evaluation (ARPO_SPEC.md §1): greedy, one path, no branching, with
the system prompt and tool protocol the checkpoint was trained with (`agent.json`, agent_spec.py) and the
run's limits. `emit(kind, data)` is told what happens, in order:

- `model`       {"text"}: the model's text, in chunks about every `chunk_s` seconds while it decodes; a
                tool call's markup is held back and comes as the `tool_call` instead;
- `tool_call`   {"index", "name", "arguments", "raw", "error"}: before the tool runs;
- `tool_result` {"index", "name", "output", "error", "latency_ms"}: what the model reads next;
- `final`       {"answer", "text", "finish_reason", "tool_calls", "tokens", "seconds"}: the end;
- `error`       {"code", "message"}: the answer was stopped (the wall-clock cap); what came before stands.

Chunks come from the sampler's per-token hook (the transformers sampler has one); the text of a finished
segment is always the agent loop's own, so a sampler without the hook still gives every word, per segment.
`SamplerCache` keeps the last models a process loaded: loading one costs about as much as an answer.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arpo_engine.config import RunConfig
from arpo_engine.tools.base import Tool

Emit = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Limits:
    max_response_tokens: int
    """Model and tool-result tokens of the answer (the run's rollout.max_response_tokens)."""
    max_tool_calls: int
    """Tool calls the answer may make (the run's rollout.max_tool_calls)."""
    wall_s: float
    """Seconds the answer may take, tools included; past it the answer is stopped."""
    chunk_s: float = 0.1
    """Seconds between two `model` chunks while the model writes."""


class TimeCap(Exception):
    """The answer ran past Limits.wall_s."""


def call_markers(stop_strings: Sequence[str]) -> tuple[str, ...]:
    """Where a tool call opens, from where it closes: `</tool_call>` -> `<tool_call>`, `</python>` -> `<python>`."""
    return tuple(f"<{s[2:]}" for s in stop_strings if s.startswith("</"))


def streaming_text(text: str, markers: Sequence[str]) -> str:
    """What may be shown of a segment still being written: up to the first call marker, without a tail that
    could be the start of one, nor half a character (a byte-level token can end inside a UTF-8 sequence)."""
    cut = min((i for m in markers if (i := text.find(m)) >= 0), default=len(text))
    shown = text[:cut].rstrip("\ufffd")
    if cut < len(text):
        return shown
    held = max((k for m in markers for k in range(1, len(m)) if shown.endswith(m[:k])), default=0)
    return shown[: len(shown) - held]


def segment_text(text: str, raw_call: str | None, markers: Sequence[str]) -> str:
    """What is shown of a finished segment: all of it, or what comes before the tool call that ends it."""
    if raw_call is None:
        return text
    at = text.rfind(raw_call) if raw_call else -1
    if at < 0:
        at = max((text.rfind(m) for m in markers), default=-1)
    return text[:at] if at >= 0 else text


class _Stream:
    """Turns decoded tokens and finished segments into `model` chunks; enforces the wall-clock cap."""

    def __init__(
        self, tokenizer: Any, markers: Sequence[str], emit: Emit, limits: Limits, clock: Callable[[], float]
    ) -> None:
        self.tokenizer, self.markers, self.emit, self.limits, self.clock = tokenizer, markers, emit, limits, clock
        self.deadline = clock() + limits.wall_s
        self.tokens: list[int] = []
        self.sent = ""
        self.last_push = clock()

    def check_time(self) -> None:
        if self.clock() > self.deadline:
            raise TimeCap(f"past {self.limits.wall_s:g} s")

    def on_token(self, request: Any, token: int) -> None:
        self.check_time()
        self.tokens.append(token)
        if self.clock() - self.last_push >= self.limits.chunk_s:
            text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
            self._push(streaming_text(text, self.markers), complete=False)

    def end_segment(self, text: str) -> None:
        self._push(text, complete=True)
        self.tokens, self.sent = [], ""

    def flush_partial(self) -> None:
        """What was decoded of a segment that will not finish (the cap stopped it)."""
        text = self.tokenizer.decode(self.tokens, skip_special_tokens=True) if self.tokens else ""
        self.end_segment(streaming_text(text, self.markers))

    def _push(self, shown: str, *, complete: bool) -> None:
        self.last_push = self.clock()
        if len(shown) <= len(self.sent) or not (complete or shown.startswith(self.sent)):
            return
        self.emit("model", {"text": shown[len(self.sent) :]})
        self.sent = shown


class _Question:
    def __init__(self, text: str) -> None:
        self.messages = [{"role": "user", "content": text}]


def answer_config(spec: Mapping[str, Any], limits: Limits) -> RunConfig:
    """The loop's config: the checkpoint's context window and result cap, the run's budget, greedy, N = M = 1."""
    stored = spec["limits"]
    raw = {
        "model": {"path": "playground", "max_model_len": int(stored["max_model_len"])},
        # a question may be longer than the training prompts were: only the model's window bounds it
        "data": {"max_prompt_tokens": int(stored["max_model_len"]) - 1},
        "rollout": {
            "sampler": "transformers",
            "call_format": spec["call_format"]["name"],
            "group_size": 1,
            "initial_samples": 1,
            "max_tool_calls": limits.max_tool_calls,
            "max_response_tokens": limits.max_response_tokens,
            "tool_result_max_chars": int(stored["tool_result_max_chars"]),
            "tool_concurrency": 1,
        },
        "branching": {"enabled": False},
    }
    return RunConfig.from_dict(raw).validate()


def answer_question(
    question: str,
    *,
    sampler: Any,
    spec: Mapping[str, Any],
    tools: Mapping[str, Tool],
    limits: Limits,
    emit: Emit,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any] | None:
    """Answer `question` with the agent loop, telling `emit` as it goes; returns the `final` data, or None
    when the wall-clock cap stopped the answer (an `error` event says so)."""
    from arpo_engine.agent_spec import agent_call_format
    from arpo_engine.rewards.text import extract_prediction
    from arpo_engine.rollout.agent import RolloutDeps, run_rollouts

    config = answer_config(spec, limits)
    call_format = agent_call_format(spec)
    markers = call_markers(call_format.stop_strings(tools))
    started = clock()
    stream = _Stream(sampler.tokenizer, markers, emit, limits, clock)

    def observe(kind: str, path: Any, item: Any) -> None:
        if kind == "tool_call":
            stream.end_segment(segment_text(path.segments[-1].text, item.call.raw, markers))
            call = item.call
            emit("tool_call", {"index": len(path.tool_calls) + 1, "name": call.name, "arguments": dict(call.arguments),
                               "raw": call.raw, "error": item.error})  # fmt: skip
        else:
            emit("tool_result", {"index": item.index, "name": item.name, "output": item.output, "error": item.error,
                                 "latency_ms": round(item.latency_ms, 1)})  # fmt: skip
            stream.check_time()

    hooked = hasattr(sampler, "on_token")
    if hooked:
        sampler.on_token = stream.on_token
    try:
        deps = RolloutDeps(sampler, tools, call_format, random.Random(0), observe=observe)
        path = run_rollouts([_Question(question)], config, deps, greedy=True).groups[0].paths[0]
    except TimeCap:
        stream.flush_partial()
        emit("error", {"code": "time_cap", "message": f"Stopped after {limits.wall_s:g} s, the playground's time "
                       "limit for one answer; what the model wrote until then is shown."})  # fmt: skip
        return None
    finally:
        if hooked:
            sampler.on_token = None
    last = path.segments[-1] if path.segments else None
    if last is not None and last.kind == "model":
        # A call past max_tool_calls ends the path unrun: its markup is not part of the answer either.
        unrun = call_format.parse_call(last.text, tools) if path.finish_reason == "call_limit" else None
        stream.end_segment(segment_text(last.text, unrun.call.raw if unrun else None, markers))
    model_text = "".join(s.text for s in path.segments if s.kind == "model")
    final = {
        "answer": extract_prediction(model_text),
        "text": model_text,
        "finish_reason": path.finish_reason,
        "tool_calls": len(path.tool_calls),
        "tokens": path.num_model_tokens,
        "seconds": round(clock() - started, 2),
    }
    emit("final", final)
    return final


class SamplerCache:
    """The samplers this process loaded last, by model folder: the least recently used one is closed when
    a new one would make more than `size`. A folder saved again (new config.json) is loaded again."""

    def __init__(self, size: int = 2, load: Callable[..., Any] | None = None) -> None:
        self.size = max(1, size)
        self._load = load or _load_transformers
        self._items: OrderedDict[tuple[str, int, str, str], Any] = OrderedDict()

    def get(self, folder: Path | str, *, dtype: str = "float32", device: str = "auto") -> tuple[Any, bool]:
        """(sampler, loaded now?) for the model in `folder`."""
        path = Path(folder).resolve()
        key = (str(path), (path / "config.json").stat().st_mtime_ns, dtype, device)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key], False
        for stale in [k for k in self._items if k[0] == key[0]]:
            self._items.pop(stale).close()
        while len(self._items) >= self.size:
            self._items.popitem(last=False)[1].close()
        sampler = self._load(path, dtype=dtype, device=device)
        self._items[key] = sampler
        return sampler, True

    def __len__(self) -> int:
        return len(self._items)


def _load_transformers(path: Path, *, dtype: str, device: str) -> Any:
    from arpo_engine.device import resolve_device
    from arpo_engine.rollout.hf_sampler import TransformersSampler

    return TransformersSampler(path, dtype=dtype, device=resolve_device(device))  # type: ignore[arg-type]
