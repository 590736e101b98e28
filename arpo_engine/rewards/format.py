"""The format rules of the official ARPO `deep_research` scorer (ARPO_SPEC.md §3).

A response is well formed when it has matching `<think>` pairs (at least one), exactly one
`<answer>…</answer>` with a `\\boxed{…}` inside, and every tool call is followed, in order, by its
result block: `<result>…</result>` in the `tags` call format, `<tool_response>…</tool_response>` in
`hermes` (ARPO_SPEC.md §1). Result blocks are inserted by the environment, so their contents are
removed before the model's own tags are counted: a search snippet that happens to contain `<answer>`
must not cost the model its reward.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from arpo_engine.rewards.text import extract_boxed

# The paper's two tools: their tags are always checked in the `tags` format, so a call that never ran
# (cut off by the call limit, hence absent from `tool_names_used`) still needs its result.
PAPER_TOOL_TAGS = ("search", "python")
# Tags with a meaning of their own can never be tool calls.
_RESERVED_TAGS = {"think", "answer", "result", "tool_call", "tool_response"}


@dataclass(frozen=True)
class FormatCheck:
    ok: bool
    error: str
    """Why the format is invalid, phrased for the reason string; empty when ok."""
    answer: str | None
    """Text inside the single `<answer>` block, when there is exactly one."""
    boxed: str | None
    """Content of the last `\\boxed{…}` inside the answer block."""
    tool_calls: int
    """Tool calls found in the text."""


@dataclass(frozen=True)
class _Markers:
    call_open: re.Pattern[str]
    result_open: str
    result_close: str

    def call_close(self, match: re.Match[str]) -> str:
        return f"</{match.group(1)}>"


def _markers(call_format: str, tool_names_used: Sequence[str]) -> _Markers:
    if call_format == "hermes":
        return _Markers(re.compile(r"<(tool_call)>"), "<tool_response>", "</tool_response>")
    if call_format != "tags":
        raise ValueError(f"unknown call format {call_format!r} (known: tags, hermes)")
    names = {*PAPER_TOOL_TAGS, *tool_names_used} - _RESERVED_TAGS
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return _Markers(re.compile(f"<({alternatives})>"), "<result>", "</result>")


def _strip_results(text: str, markers: _Markers) -> tuple[str, int, str]:
    """Pair each call with the result block after it; return (text without results, calls, error)."""
    kept: list[str] = []
    pos, calls = 0, 0
    while True:
        call = markers.call_open.search(text, pos)
        result_at = text.find(markers.result_open, pos)
        if result_at != -1 and (call is None or result_at < call.start()):
            where = "before any tool call" if calls == 0 else "without a tool call before it"
            return "", calls, f"{markers.result_open} {where}"
        if call is None:
            break
        calls += 1
        name = call.group(1)
        close = markers.call_close(call)
        close_at = text.find(close, call.end())
        if close_at == -1:
            return "", calls, f"tool call #{calls} <{name}> is never closed"
        after_call = close_at + len(close)
        result_at = text.find(markers.result_open, after_call)
        next_call = markers.call_open.search(text, after_call)
        if result_at == -1 or (next_call is not None and next_call.start() < result_at):
            return "", calls, f"tool call #{calls} <{name}> is not followed by {markers.result_open}"
        result_end = text.find(markers.result_close, result_at + len(markers.result_open))
        if result_end == -1:
            return "", calls, f"{markers.result_open} of tool call #{calls} is never closed"
        kept.append(text[pos:result_at])
        pos = result_end + len(markers.result_close)
    kept.append(text[pos:])
    model_text = "".join(kept)
    if markers.result_close in model_text:
        return "", calls, f"{markers.result_close} without {markers.result_open}"
    return model_text, calls, ""


def _think_error(text: str) -> str:
    opened, closed = text.count("<think>"), text.count("</think>")
    if opened == 0 and closed == 0:
        return "missing <think>"
    if opened != closed:
        return f"{opened} <think> vs {closed} </think>"
    depth = 0
    for tag in re.findall(r"</?think>", text):
        depth += 1 if tag == "<think>" else -1
        if depth < 0:
            return "</think> before <think>"
    return ""


def _answer_block(text: str) -> tuple[str | None, str]:
    opened, closed = text.count("<answer>"), text.count("</answer>")
    if opened == 0 and closed == 0:
        return None, "no <answer> block"
    if opened != closed:
        return None, f"{opened} <answer> vs {closed} </answer>"
    if opened != 1:
        return None, f"{opened} <answer> blocks"
    start, end = text.find("<answer>"), text.find("</answer>")
    if end < start:
        return None, "</answer> before <answer>"
    return text[start + len("<answer>") : end], ""


def check_format(response_text: str, *, call_format: str, tool_names_used: Sequence[str] = ()) -> FormatCheck:
    """Apply the ARPO format rules; the first rule that fails names the error."""
    markers = _markers(call_format, tool_names_used)
    model_text, calls, error = _strip_results(response_text, markers)
    if not error:
        error = _think_error(model_text)
    answer: str | None = None
    if not error:
        answer, error = _answer_block(model_text)
    boxed = extract_boxed(answer) if answer is not None else None
    if not error and boxed is None:
        error = "no \\boxed{} in <answer>"
    return FormatCheck(ok=not error, error=error, answer=answer, boxed=boxed, tool_calls=calls)
