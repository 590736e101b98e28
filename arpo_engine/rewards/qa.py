"""Text-answer scorers: the official ARPO reward, exact match and token F1 (ARPO_SPEC.md §3).

`ArpoScorer` is the official `deep_research` reward: -1 for a malformed response, otherwise the
token F1 of the boxed answer, plus 0.1 when the path used both a search-kind and a python-kind tool
and got some credit. `ExactMatchScorer` and `F1Scorer` are lenient: they never penalise format, they
only read the final answer.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from arpo_engine.rewards.base import RewardResult, as_answer_list
from arpo_engine.rewards.format import check_format
from arpo_engine.rewards.text import best_f1, exact_match, extract_prediction

NO_ANSWER = "no \\boxed{} or <answer> block"


@dataclass(frozen=True)
class ArpoScorer:
    format_penalty: float = -1.0
    """Reward of a malformed response (official: -1)."""
    multi_tool_bonus: float = 0.1
    """r_M, added when F1 > 0 and every kind in `bonus_kinds` was used (official: 0.1)."""
    bonus_kinds: tuple[str, ...] = ("search", "python")
    """Tool kinds (ToolConfig.kind) that must all be used for the bonus."""

    def __call__(
        self,
        response_text: str,
        answers: Sequence[str],
        *,
        tool_names_used: Sequence[str] = (),
        tool_kinds_used: Collection[str] = (),
        call_format: str = "tags",
    ) -> RewardResult:
        fmt = check_format(response_text, call_format=call_format, tool_names_used=tool_names_used)
        golds = as_answer_list(answers)
        if not fmt.ok:
            # The reward is the penalty, but whether the answer is right is still reported (PRODUCT.md:
            # accuracy measures the answer, format/ok_frac the format), read as leniently as F1Scorer does.
            prediction = fmt.boxed if fmt.boxed is not None else extract_prediction(response_text)
            failed = {
                "correct": prediction is not None and any(exact_match(prediction, gold) for gold in golds),
                "prediction": prediction,
                "format_ok": False,
                "format_error": fmt.error,
            }
            return RewardResult(self.format_penalty, f"format: {fmt.error}", failed)
        assert fmt.boxed is not None  # a well-formed response has a box
        f1, best = best_f1(fmt.boxed, golds)
        # Kinds, not names, decide the bonus: a user may call their search tool "wiki".
        multi_tool = set(self.bonus_kinds) <= set(tool_kinds_used)
        bonus = self.multi_tool_bonus if f1 > 0 and multi_tool else 0.0
        if not golds:
            reason = "f1=0.00 (no ground truth)"
        elif bonus:
            reason = f"f1={f1:.2f} (+{bonus:g} multi-tool)"
        else:
            reason = f"f1={f1:.2f}"
        details: dict[str, Any] = {
            "correct": any(exact_match(fmt.boxed, gold) for gold in golds),
            "prediction": fmt.boxed,
            "format_ok": True,
            "f1": f1,
            "best_answer": golds[best] if best is not None else None,
            "multi_tool_bonus": bonus,
            "tool_calls": fmt.tool_calls,
        }
        return RewardResult(f1 + bonus, reason, details)


@dataclass(frozen=True)
class ExactMatchScorer:
    """1 if the final answer equals a ground truth after SQuAD normalisation, else 0."""

    def __call__(
        self,
        response_text: str,
        answers: Sequence[str],
        *,
        tool_names_used: Sequence[str] = (),
        tool_kinds_used: Collection[str] = (),
        call_format: str = "tags",
    ) -> RewardResult:
        prediction = extract_prediction(response_text)
        if prediction is None:
            return RewardResult(0.0, NO_ANSWER, {"correct": False, "prediction": None})
        golds = as_answer_list(answers)
        for index, gold in enumerate(golds):
            if exact_match(prediction, gold):
                matched = {"correct": True, "prediction": prediction, "best_answer": gold}
                return RewardResult(1.0, f"exact match with answer #{index + 1}", matched)
        missed = {"correct": False, "prediction": prediction}
        return RewardResult(0.0, f"no exact match for {prediction!r:.80}", missed)


@dataclass(frozen=True)
class F1Scorer:
    """Token F1 of the final answer, max over the ground truths; no format rules, no bonus."""

    def __call__(
        self,
        response_text: str,
        answers: Sequence[str],
        *,
        tool_names_used: Sequence[str] = (),
        tool_kinds_used: Collection[str] = (),
        call_format: str = "tags",
    ) -> RewardResult:
        prediction = extract_prediction(response_text)
        if prediction is None:
            return RewardResult(0.0, NO_ANSWER, {"correct": False, "prediction": None, "f1": 0.0})
        golds = as_answer_list(answers)
        f1, best = best_f1(prediction, golds)
        details: dict[str, Any] = {
            "correct": any(exact_match(prediction, gold) for gold in golds),
            "prediction": prediction,
            "f1": f1,
            "best_answer": golds[best] if best is not None else None,
        }
        return RewardResult(f1, f"f1={f1:.2f}", details)
