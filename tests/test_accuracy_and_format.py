"""Accuracy measures the answer, format is its own number (PRODUCT.md metric vocabulary)."""

from __future__ import annotations

import pytest

from arpo_engine.rewards import get_scorer
from arpo_engine.rewards.base import RewardResult, score_path
from arpo_engine.rollout.types import Path, Segment
from arpo_engine.trainer import reward_metrics

arpo = get_scorer("arpo")
STRAY_TAG = r"<think>2+2</think><answer>\boxed{4}</answer></think>"  # right answer, one </think> too many


def test_a_right_answer_with_a_format_error_gets_the_penalty_yet_counts_as_correct() -> None:
    result = arpo(STRAY_TAG, ["4"])
    assert result.score == -1.0
    assert (result.details["correct"], result.details["format_ok"], result.details["prediction"]) == (True, False, "4")


def test_a_wrong_answer_with_a_format_error_is_not_correct() -> None:
    assert arpo(STRAY_TAG, ["5"]).details["correct"] is False
    assert arpo("no answer at all", ["4"]).details["correct"] is False


def test_accuracy_and_format_ok_frac_are_reported_apart() -> None:
    results = [
        RewardResult(-1.0, "format", {"correct": True, "format_ok": False}),  # the SFT model's typical answer
        RewardResult(1.0, "f1=1.00", {"correct": True, "format_ok": True}),
        RewardResult(0.0, "f1=0.00", {"correct": False, "format_ok": True}),
        RewardResult(-1.0, "format", {"correct": False, "format_ok": False}),
    ]
    metrics = reward_metrics([results[:2], results[2:]])
    assert metrics["accuracy"] == pytest.approx(0.5)
    assert metrics["format/ok_frac"] == pytest.approx(0.5)
    assert metrics["reward/mean"] == pytest.approx(-0.25)


@pytest.mark.parametrize(("text", "ok"), [(r"<think>a</think><answer>\boxed{4}</answer>", True), (STRAY_TAG, False)])
def test_scorers_without_format_rules_still_get_the_format_measured(text: str, ok: bool) -> None:
    path = Path(id=0, origin="initial", segments=[Segment("model", 0, 0, text)])
    result = score_path(get_scorer("exact_match"), path, ["4"], tool_kinds={}, call_format="tags")
    assert result.score == 1.0 and result.details["correct"] is True
    assert result.details["format_ok"] is ok


def test_eval_reports_answer_accuracy_and_format_ok_apart() -> None:
    from arpo_engine.config import RunConfig
    from arpo_engine.data import Sample
    from arpo_engine.rollout.formats import get_format
    from arpo_engine.rollout.scripted import Reply, ScriptContext, ScriptedSampler
    from arpo_engine.trainer import evaluate_policy

    def script(ctx: ScriptContext) -> Reply:
        return Reply(STRAY_TAG if "first" in ctx.text else r"<think>a</think><answer>\boxed{5}</answer>")

    config = RunConfig.from_dict({"reward": {"scorer": "arpo"}, "data": {"max_prompt_tokens": 2000}}).validate()
    samples = [
        Sample(index=i, messages=[{"role": "user", "content": q}], answers=("4",), data_source="t", extra={})
        for i, q in enumerate(["first: 2+2?", "second: 2+2?"])
    ]
    metrics, _ = evaluate_policy(samples, config, ScriptedSampler(script), {}, get_format("tags"), arpo)
    assert metrics["eval/accuracy"] == pytest.approx(0.5)  # the stray tag does not hide the right answer
    assert metrics["eval/format_ok"] == pytest.approx(0.5)
    assert metrics["eval/reward_mean"] == pytest.approx(-0.5)  # -1 (format) and 0 (wrong answer)
