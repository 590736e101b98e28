"""A deterministic sampler driven by a script, for tests and demos of the loop's logic.

`ScriptedSampler` honours the Sampler protocol (stop strings, max_tokens, EOS) over a one-character-
per-token tokenizer, so a test can say exactly what the "model" writes after a given context and which
entropies it reports, and check the loop's branching and masking by hand.

Its streaming interface can finish requests in different orders (`schedule`), so a test can check that
the loop's results do not depend on the order in which segments come back:
- `batch`: a step returns everything queued (like the transformers sampler);
- `tokens`: a step decodes one token of every queued request, so short segments come back first and a
  continuation submitted meanwhile joins the running batch (like vLLM);
- `lifo`: a step returns only the request submitted last;
- `random`: a step returns one queued request drawn at random (`schedule_seed`).
Under `tokens` a request that asks for its entropy window (`GenRequest.window`) reports it in the step
that decodes its window-th token, unless it ends there; under `random` a step also reports the window
of one other request drawn at random. `batch` and `lifo` never stream windows.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from arpo_engine.rollout.sampler import Finished, GenRequest, GenResult, Window, check_sampling


class CharTokenizer:
    """One token per character (code point < vocab_size); id 0 is EOS."""

    eos_token_id = 0

    def __init__(self, vocab_size: int = 256) -> None:
        self.vocab_size = vocab_size

    def apply_chat_template(
        self, messages: Sequence[Mapping[str, Any]], tokenize: bool = False, add_generation_prompt: bool = True
    ) -> str:
        text = "".join(f"<|{m['role']}|>{m['content']}\n" for m in messages)
        return text + ("<|assistant|>" if add_generation_prompt else "")

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [min(ord(c), self.vocab_size - 1) for c in text]}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return "".join(chr(i) for i in ids if i != self.eos_token_id)


@dataclass(frozen=True)
class Reply:
    text: str
    """What the model writes; cut at the first stop string or max_tokens."""
    entropy: float | Sequence[float] = 1.0
    """Per-token entropy in nats: one value for every token, or a list (padded with its last value)."""
    eos: bool = True
    """Append EOS when the text ends without reaching a stop string."""


@dataclass(frozen=True)
class ScriptContext:
    text: str
    """The whole context decoded: prompt, earlier segments and tool results."""
    request: GenRequest
    call: int
    """0-based count of requests this sampler has received."""


Script = Callable[[ScriptContext], Reply]
Schedule = Literal["batch", "tokens", "lifo", "random"]


@dataclass
class _Job:
    result: GenResult
    steps_left: int
    """`tokens` schedule: steps until this request's last token is decoded."""
    window: int
    """Tokens after which the entropy window is reported; 0 when it is not (asked for or shorter)."""


class ScriptedSampler:
    entropy_estimator = "exact"

    def __init__(
        self, script: Script, vocab_size: int = 256, *, schedule: Schedule = "batch", schedule_seed: int = 0
    ) -> None:
        self.script = script
        self.tokenizer = CharTokenizer(vocab_size)
        self.vocab_size = vocab_size
        self.schedule = schedule
        self.continuous_batching = schedule != "batch"
        self.calls = 0
        self.steps = 0
        self.requests: list[GenRequest] = []
        self.events: list[tuple[str, str, int]] = []
        """("submit" | "window" | "finish" | "abort", key, step count at the time), in the order they happened."""
        self._jobs: dict[str, _Job] = {}
        self._windows: list[Window] = []
        self._order = random.Random(schedule_seed)

    def generate(self, requests: Sequence[GenRequest], *, temperature: float, top_p: float) -> list[GenResult]:
        return [self._run_script(req) for req in requests]

    def submit(self, key: str, request: GenRequest, *, temperature: float, top_p: float) -> None:
        check_sampling(temperature, top_p)
        if key in self._jobs:
            raise ValueError(f"a request with key {key!r} is already pending")
        result = self._run_script(request)
        n = len(result.token_ids)
        self._jobs[key] = _Job(result, max(1, n), request.window if 0 < request.window < n else 0)
        self.events.append(("submit", key, self.steps))

    def step(self) -> list[Finished]:
        if not self._jobs:
            return []
        self.steps += 1
        keys = list(self._jobs)
        if self.schedule == "tokens":
            for job in self._jobs.values():
                job.steps_left -= 1
            done = [k for k in keys if self._jobs[k].steps_left <= 0]
        elif self.schedule == "lifo":
            done = keys[-1:]
        elif self.schedule == "random":
            done = [self._order.choice(keys)]
        else:
            done = keys
        for key in done:
            self.events.append(("finish", key, self.steps))
        finished = [(key, self._jobs.pop(key).result) for key in done]
        self._stream_windows()
        return finished

    def take_windows(self) -> list[Window]:
        windows, self._windows = self._windows, []
        return windows

    def _stream_windows(self) -> None:
        if self.schedule == "tokens":
            keys = [
                k
                for k, job in self._jobs.items()
                if job.window and len(job.result.token_ids) - job.steps_left >= job.window
            ]
        elif self.schedule == "random":
            waiting = [k for k, job in self._jobs.items() if job.window]
            keys = [self._order.choice(waiting)] if waiting else []
        else:
            keys = []
        for key in keys:
            job = self._jobs[key]
            self._windows.append((key, job.result.entropies[: job.window]))
            self.events.append(("window", key, self.steps))
            job.window = 0

    def pending(self) -> int:
        return len(self._jobs)

    def cancel(self) -> None:
        self._jobs.clear()
        self._windows.clear()

    def abort(self, keys: Iterable[str]) -> None:
        for key in keys:
            if self._jobs.pop(key, None) is not None:
                self.events.append(("abort", key, self.steps))

    def _run_script(self, req: GenRequest) -> GenResult:
        ctx = ScriptContext(self.tokenizer.decode(req.prompt_ids), req, self.calls)
        self.calls += 1
        self.requests.append(req)
        return self._answer(self.script(ctx), req)

    def _answer(self, reply: Reply, req: GenRequest) -> GenResult:
        text, finish, stop_str = reply.text, "eos", None
        cut = min(((text.find(s) + len(s), s) for s in req.stop if s in text), default=None)
        if cut is not None:
            text, finish, stop_str = text[: cut[0]], "stop", cut[1]
        ids = self.tokenizer(text)["input_ids"]
        if finish == "eos" and reply.eos:
            ids = [*ids, self.tokenizer.eos_token_id]
        if finish == "eos" and not reply.eos:
            finish = "length"
        if len(ids) > req.max_tokens:
            ids, finish, stop_str = ids[: req.max_tokens], "length", None
        entropies = _expand(reply.entropy, len(ids))
        return GenResult(ids, self.tokenizer.decode(ids), entropies, finish, stop_str)  # type: ignore[arg-type]

    def close(self) -> None:
        pass


def _expand(entropy: float | Sequence[float], n: int) -> list[float]:
    if isinstance(entropy, (int, float)):
        return [float(entropy)] * n
    values = [float(e) for e in entropy] or [0.0]
    return (values + [values[-1]] * n)[:n]
