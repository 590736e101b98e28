"""The record every scorer returns and the one call signature they share (ARPO_SPEC.md §3).

A scorer turns one finished response into a scalar reward plus a human-readable reason, so the
dashboard can say *why* a path got -1 or 0.67 instead of showing a bare number.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from arpo_engine.rewards.format import check_format

if TYPE_CHECKING:
    from arpo_engine.rollout.types import Path


@dataclass(frozen=True)
class RewardResult:
    score: float
    """The reward used for the advantage."""
    reason: str
    """Which rule fired, e.g. `format: 2 <answer> blocks` or `f1=0.67 (+0.1 multi-tool)`."""
    details: dict[str, Any] = field(default_factory=dict)
    """Facts for the dashboard; every scorer sets `correct` (bool: the answer is right, whatever the format)
    and `prediction` (str | None); `score_path` adds `format_ok` (bool) where the scorer did not."""


class Scorer(Protocol):
    def __call__(
        self,
        response_text: str,
        answers: Sequence[str],
        *,
        tool_names_used: Sequence[str] = (),
        tool_kinds_used: Collection[str] = (),
        call_format: str = "tags",
    ) -> RewardResult:
        """Score one response (the text after the prompt, tool results included) against its answers.

        `tool_names_used`: names of the tools the path called (the `tags` format check reads `<name>`
        tags of these names as calls; adding the other configured names is harmless and also catches
        a final call that never ran); `tool_kinds_used`: the kinds (`python`, `search`, …) of the tools
        called, from the run config; `call_format`: `tags` or `hermes`.
        Never raises because of the response text.
        """
        ...


def as_answer_list(answers: Sequence[str]) -> list[str]:
    """A bare string is one answer, not a sequence of one-character answers."""
    if isinstance(answers, str):
        return [answers]
    return [str(a) for a in answers]


def score_path(
    scorer: Scorer, path: Path, answers: Sequence[str], *, tool_kinds: Mapping[str, str], call_format: str
) -> RewardResult:
    """Score a finished rollout path; `tool_kinds` maps every configured tool name to its kind."""
    called = [event.name for event in path.tool_calls]
    # Configured names too: a call cut off by the call limit never ran but still needs its result.
    names = list(dict.fromkeys([*called, *tool_kinds]))
    kinds = {tool_kinds[name] for name in called if name in tool_kinds}
    result = scorer(path.text, answers, tool_names_used=names, tool_kinds_used=kinds, call_format=call_format)
    if "format_ok" in result.details:
        return result
    # Scorers without format rules still get the format measured apart (`format/ok_frac`).
    fmt = check_format(path.text, call_format=call_format, tool_names_used=names)
    return replace(result, details={**result.details, "format_ok": fmt.ok, "format_error": fmt.error})
