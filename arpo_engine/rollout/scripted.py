"""A deterministic sampler driven by a script, for tests and demos of the loop's logic.

`ScriptedSampler` honours the Sampler protocol (stop strings, max_tokens, EOS) over a one-character-
per-token tokenizer, so a test can say exactly what the "model" writes after a given context and which
entropies it reports, and check the loop's branching and masking by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from arpo_engine.rollout.sampler import GenRequest, GenResult


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
    """0-based count of requests this sampler has answered."""


Script = Callable[[ScriptContext], Reply]


class ScriptedSampler:
    entropy_estimator = "exact"

    def __init__(self, script: Script, vocab_size: int = 256) -> None:
        self.script = script
        self.tokenizer = CharTokenizer(vocab_size)
        self.vocab_size = vocab_size
        self.calls = 0
        self.requests: list[GenRequest] = []

    def generate(
        self, requests: Sequence[GenRequest], *, temperature: float, top_p: float
    ) -> list[GenResult]:
        results = []
        for req in requests:
            ctx = ScriptContext(self.tokenizer.decode(req.prompt_ids), req, self.calls)
            self.calls += 1
            self.requests.append(req)
            results.append(self._answer(self.script(ctx), req))
        return results

    def _answer(self, reply: Reply, req: GenRequest) -> GenResult:
        text, finish, stop_str = reply.text, "eos", None
        cut = min(
            ((text.find(s) + len(s), s) for s in req.stop if s in text), default=None
        )
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
