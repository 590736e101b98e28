"""Reward scorers, chosen by name (ARPO_SPEC.md §3).

Every scorer is called as `scorer(response_text, answers, *, tool_names_used, tool_kinds_used,
call_format) -> RewardResult(score, reason, details)` and never raises on the response text.

- `arpo`: the official ARPO `deep_research` reward: -1 for a malformed response, else token F1 of the
  boxed answer, +0.1 when both a search-kind and a python-kind tool were used and F1 > 0.
- `exact_match`, `f1`: lenient text scorers of the final answer (no format penalty).
- `math`: 1 if the final answer is mathematically equivalent to a ground truth (math-verify).
- `python`: a user-written `score(response, answers)` run in the python sandbox.

`get_scorer(name, **options)` builds one; options are the factory's keyword arguments (e.g.
`get_scorer("python", source=..., timeout_s=5)`). `score_path(scorer, path, answers, tool_kinds=…,
call_format=…)` scores a rollout `Path` with the tool facts filled in.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from arpo_engine.rewards.base import RewardResult, Scorer, score_path
from arpo_engine.rewards.format import FormatCheck, check_format
from arpo_engine.rewards.math_equiv import MathScorer
from arpo_engine.rewards.qa import ArpoScorer, ExactMatchScorer, F1Scorer
from arpo_engine.rewards.text import (
    exact_match,
    extract_answer_block,
    extract_boxed,
    extract_prediction,
    normalize_answer,
    strip_latex_text,
    token_f1,
)
from arpo_engine.rewards.user_python import PythonScorer, check_scorer_source

SCORERS: dict[str, Callable[..., Scorer]] = {
    "arpo": ArpoScorer,
    "exact_match": ExactMatchScorer,
    "f1": F1Scorer,
    "math": MathScorer,
    "python": PythonScorer,
}


def get_scorer(name: str, **options: Any) -> Scorer:
    """Build the scorer registered as `name`; unknown names and options fail with the valid choices."""
    try:
        factory = SCORERS[name]
    except KeyError:
        raise ValueError(f"unknown reward scorer {name!r} (known: {', '.join(SCORERS)})") from None
    signature = inspect.signature(factory)
    try:
        signature.bind(**options)
    except TypeError as exc:
        accepted = ", ".join(p for p in signature.parameters if p != "self")
        raise ValueError(f"reward scorer {name!r}: {exc} (options: {accepted or 'none'})") from None
    return factory(**options)


__all__ = [
    "SCORERS",
    "ArpoScorer",
    "ExactMatchScorer",
    "F1Scorer",
    "FormatCheck",
    "MathScorer",
    "PythonScorer",
    "RewardResult",
    "Scorer",
    "check_format",
    "check_scorer_source",
    "exact_match",
    "extract_answer_block",
    "extract_boxed",
    "extract_prediction",
    "get_scorer",
    "normalize_answer",
    "score_path",
    "strip_latex_text",
    "token_f1",
]
