"""Reward scorers (ARPO_SPEC.md §3): format rules, token F1, bonus, math equivalence, user scorers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import pytest

from arpo_engine.rewards import (
    SCORERS,
    MathScorer,
    PythonScorer,
    extract_boxed,
    get_scorer,
    normalize_answer,
    score_path,
    token_f1,
)
from arpo_engine.rollout.formats import HermesFormat, TagFormat
from arpo_engine.rollout.types import Path, Segment, ToolEvent
from arpo_engine.tools.base import ToolCall

arpo = get_scorer("arpo")
TAGS = TagFormat()
HERMES = HermesFormat()


def tags_trajectory(*, answer: str = r"\boxed{Paris}", think: str = "<think>plan</think>") -> str:
    """A well-formed paper-format response: search, then python, then the answer."""
    return (
        f"{think}<search>capital of France</search>"
        + TAGS.render_result("Paris is the capital of France.")
        + "<think>check</think><python>print(1 + 1)</python>"
        + TAGS.render_result("2")
        + f"<answer>The answer is {answer}</answer>"
    )


def hermes_trajectory(answer: str = r"\boxed{Paris}") -> str:
    call = HERMES.render_call(ToolCall("wiki", {"query": "capital of France"}), {})
    return (
        "<think>look it up</think>"
        + call
        + HERMES.render_result("Paris is the capital of France.")
        + f"<think>done</think><answer>{answer}</answer>"
    )


# ------------------------------------------------------------------ text helpers


def test_extract_boxed_keeps_nested_braces() -> None:
    assert extract_boxed(r"so \boxed{\frac{1}{2}} it is") == r"\frac{1}{2}"


def test_extract_boxed_takes_the_last_box() -> None:
    assert extract_boxed(r"\boxed{3} no wait, \boxed{4}") == "4"


def test_extract_boxed_skips_an_unclosed_box() -> None:
    assert extract_boxed(r"\boxed{3} and then \boxed{4") == "3"


def test_extract_boxed_treats_escaped_braces_as_text() -> None:
    assert extract_boxed(r"\boxed{\{1, 2\}}") == r"\{1, 2\}"


def test_extract_boxed_returns_none_without_a_box() -> None:
    assert extract_boxed("the answer is 4") is None


def test_normalize_answer_drops_case_punctuation_articles_and_extra_spaces() -> None:
    assert normalize_answer("  The Eiffel-Tower,  in   a city! ") == "eiffeltower in city"


def test_token_f1_gives_hand_computed_partial_credit() -> None:
    # pred tokens [cat, sat, on, mat], gold [cat, sat]: P = 2/4, R = 2/2, F1 = 2/3.
    assert token_f1("The cat sat on the mat", "a cat sat") == pytest.approx(2 / 3)
    # pred [new, york, city], gold [york, city, new, jersey]: P = 1, R = 3/4, F1 = 6/7.
    assert token_f1("New York City", "York City, New Jersey") == pytest.approx(6 / 7)


def test_token_f1_scores_a_yes_no_mismatch_zero() -> None:
    assert token_f1("yes", "no") == 0.0
    assert token_f1("no it is not", "no") == 0.0
    assert token_f1("Yes.", "yes") == 1.0


def test_token_f1_reads_through_latex_text_wrappers() -> None:
    assert token_f1(r"\text{Paris}", "Paris") == 1.0


# ------------------------------------------------------------------ arpo: well-formed responses


def test_arpo_gives_f1_plus_bonus_when_search_and_python_kinds_were_used() -> None:
    result = arpo(
        tags_trajectory(),
        ["Paris"],
        tool_names_used=["search", "python"],
        tool_kinds_used={"search", "python"},
        call_format="tags",
    )
    assert result.score == pytest.approx(1.1)
    assert result.reason == "f1=1.00 (+0.1 multi-tool)"
    assert result.details["correct"] is True
    assert result.details["tool_calls"] == 2


def test_arpo_gives_no_bonus_when_only_one_tool_kind_was_used() -> None:
    result = arpo(tags_trajectory(), ["Paris"], tool_names_used=["python"], tool_kinds_used={"python"})
    assert result.score == 1.0
    assert result.reason == "f1=1.00"


def test_arpo_gives_no_bonus_when_f1_is_zero() -> None:
    result = arpo(tags_trajectory(answer=r"\boxed{Lyon}"), ["Paris"], tool_kinds_used={"search", "python"})
    assert result.score == 0.0
    assert result.reason == "f1=0.00"


def test_arpo_bonus_follows_tool_kinds_not_tool_names() -> None:
    # Kinds come from the run config: whatever the tools are named, these kinds were used.
    kinds = {"search", "python"}
    by_kind = arpo(hermes_trajectory(), ["Paris"], tool_kinds_used=kinds, call_format="hermes")
    by_name_only = arpo(tags_trajectory(), ["Paris"], tool_names_used=["search", "python"])
    assert by_kind.score == pytest.approx(1.1)
    assert by_name_only.score == 1.0


def test_arpo_gives_hand_computed_partial_credit() -> None:
    result = arpo(tags_trajectory(answer=r"\boxed{the cat sat on the mat}"), ["a cat sat"])
    assert result.score == pytest.approx(2 / 3)
    assert result.reason == "f1=0.67"


def test_arpo_takes_the_best_of_several_ground_truths() -> None:
    # vs "new york city": P = 1, R = 2/3, F1 = 0.8; vs "big apple": 0.
    result = arpo(tags_trajectory(answer=r"\boxed{New York}"), ["Big Apple", "New York City"])
    assert result.score == pytest.approx(0.8)
    assert result.details["best_answer"] == "New York City"


def test_arpo_scores_a_yes_no_mismatch_zero_without_a_format_penalty() -> None:
    result = arpo(tags_trajectory(answer=r"\boxed{yes}"), ["no"])
    assert result.score == 0.0
    assert result.details["format_ok"] is True


def test_arpo_reads_a_box_with_nested_braces() -> None:
    result = arpo(tags_trajectory(answer=r"\boxed{\frac{1}{2}}"), [r"\frac{1}{2}"])
    assert result.score == 1.0
    assert result.details["prediction"] == r"\frac{1}{2}"


def test_arpo_scores_the_last_box_in_the_answer() -> None:
    result = arpo(tags_trajectory(answer=r"\boxed{Lyon}, no: \boxed{Paris}"), ["Paris"])
    assert result.score == 1.0


def test_arpo_takes_a_bare_string_as_one_answer() -> None:
    assert arpo(tags_trajectory(), "Paris").score == 1.0


def test_arpo_ignores_answer_tags_inside_a_tool_result() -> None:
    text = (
        "<think>search</think><search>q</search>"
        + TAGS.render_result("a page says <answer>\\boxed{Lyon}</answer> and <think>")
        + r"<answer>\boxed{Paris}</answer>"
    )
    result = arpo(text, ["Paris"], tool_names_used=["search"])
    assert result.score == 1.0


def test_arpo_accepts_a_hermes_trajectory() -> None:
    result = arpo(hermes_trajectory(), ["Paris"], tool_names_used=["wiki"], call_format="hermes")
    assert result.score == 1.0
    assert result.details["tool_calls"] == 1


# ------------------------------------------------------------------ arpo: format violations


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (r"<answer>\boxed{Paris}</answer>", "format: missing <think>"),
        (r"<think>a</think><think>b<answer>\boxed{Paris}</answer>", "format: 2 <think> vs 1 </think>"),
        (r"</think>a<think><answer>\boxed{Paris}</answer>", "format: </think> before <think>"),
        (
            r"<think>a</think><answer>\boxed{Lyon}</answer><answer>\boxed{Paris}</answer>",
            "format: 2 <answer> blocks",
        ),
        (r"<think>a</think>\boxed{Paris}", "format: no <answer> block"),
        (r"<think>a</think><answer>\boxed{Paris}", "format: 1 <answer> vs 0 </answer>"),
        ("<think>a</think><answer>Paris</answer>", "format: no \\boxed{} in <answer>"),
        (r"<think>a</think>\boxed{Paris}<answer>Paris</answer>", "format: no \\boxed{} in <answer>"),
        (r"<think>a</think><answer>\boxed{Paris</answer>", "format: no \\boxed{} in <answer>"),
    ],
)
def test_arpo_gives_minus_one_for_a_malformed_answer(text: str, reason: str) -> None:
    result = arpo(text, ["Paris"])
    assert result.score == -1.0
    assert result.reason == reason
    assert result.details["format_ok"] is False


def test_arpo_gives_minus_one_for_a_tool_call_without_a_result() -> None:
    text = r"<think>a</think><python>print(1)</python><answer>\boxed{Paris}</answer>"
    result = arpo(text, ["Paris"], tool_names_used=["python"])
    assert result.score == -1.0
    assert result.reason == "format: tool call #1 <python> is not followed by <result>"


def test_arpo_gives_minus_one_for_a_result_before_any_call() -> None:
    text = "<think>a</think>" + TAGS.render_result("2") + r"<python>1+1</python><answer>\boxed{2}</answer>"
    result = arpo(text, ["2"], tool_names_used=["python"])
    assert result.score == -1.0
    assert result.reason == "format: <result> before any tool call"


def test_arpo_gives_minus_one_when_two_calls_share_one_result() -> None:
    text = "<think>a</think><search>x</search><python>1</python>" + TAGS.render_result("1")
    result = arpo(text + r"<answer>\boxed{1}</answer>", ["1"], tool_names_used=["search", "python"])
    assert result.reason == "format: tool call #1 <search> is not followed by <result>"


def test_arpo_gives_minus_one_for_a_call_cut_off_before_its_closing_tag() -> None:
    result = arpo(r"<think>a</think><answer>\boxed{1}</answer><python>print(", ["1"])
    assert result.reason == "format: tool call #1 <python> is never closed"


def test_arpo_checks_the_results_of_every_tool_the_path_used() -> None:
    text = r"<think>a</think><calculator>1+1</calculator><answer>\boxed{2}</answer>"
    assert arpo(text, ["2"], tool_names_used=["calculator"]).score == -1.0
    # A tag naming no tool of the path is plain text.
    assert arpo(text, ["2"], tool_names_used=()).score == 1.0


def test_arpo_gives_minus_one_for_a_hermes_call_without_a_response() -> None:
    call = HERMES.render_call(ToolCall("wiki", {"query": "x"}), {})
    text = "<think>a</think>" + call + r"<answer>\boxed{Paris}</answer>"
    result = arpo(text, ["Paris"], tool_names_used=["wiki"], call_format="hermes")
    assert result.score == -1.0
    assert result.reason == "format: tool call #1 <tool_call> is not followed by <tool_response>"


def test_arpo_rejects_an_unknown_call_format() -> None:
    with pytest.raises(ValueError, match="unknown call format 'json'"):
        arpo(tags_trajectory(), ["Paris"], call_format="json")


# ------------------------------------------------------------------ exact match and f1


def test_exact_match_compares_normalised_boxed_answers() -> None:
    result = get_scorer("exact_match")(r"<answer>\boxed{The Eiffel Tower.}</answer>", ["eiffel tower"])
    assert result.score == 1.0
    assert result.reason == "exact match with answer #1"


def test_exact_match_falls_back_to_the_answer_block_text() -> None:
    assert get_scorer("exact_match")("<answer> Paris </answer>", ["paris"]).score == 1.0


def test_exact_match_scores_zero_without_any_answer() -> None:
    result = get_scorer("exact_match")("I think it is Paris", ["Paris"])
    assert result.score == 0.0
    assert result.details["prediction"] is None


def test_exact_match_gives_no_partial_credit() -> None:
    assert get_scorer("exact_match")(r"<answer>\boxed{Paris France}</answer>", ["Paris"]).score == 0.0


def test_f1_scorer_gives_partial_credit_without_format_rules() -> None:
    result = get_scorer("f1")(r"no think tags <answer>\boxed{the cat sat on the mat}</answer>", ["a cat sat"])
    assert result.score == pytest.approx(2 / 3)
    assert result.reason == "f1=0.67"


# ------------------------------------------------------------------ math


@pytest.fixture(scope="module")
def math_scorer() -> Iterator[MathScorer]:
    scorer = MathScorer(timeout_s=3.0)
    yield scorer
    scorer.close()


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        ("0.5", "1/2"),
        (r"\frac{1}{2}", "0.5"),
        ("1/2", r"\frac{1}{2}"),
        (r"\sqrt{4}", "2"),
        ("x^2+2x+1", "(x+1)^2"),
    ],
)
def test_math_scorer_accepts_equivalent_forms(math_scorer: MathScorer, prediction: str, gold: str) -> None:
    result = math_scorer(f"<answer>\\boxed{{{prediction}}}</answer>", [gold])
    assert result.score == 1.0, result.reason
    assert result.details["correct"] is True


def test_math_scorer_rejects_a_different_value(math_scorer: MathScorer) -> None:
    result = math_scorer(r"<answer>\boxed{\frac{1}{3}}</answer>", ["0.5"])
    assert result.score == 0.0
    assert result.reason.startswith("not equivalent")


def test_math_scorer_matches_any_of_several_answers(math_scorer: MathScorer) -> None:
    result = math_scorer(r"<answer>\boxed{0.25}</answer>", ["3", r"\frac{1}{4}"])
    assert result.reason == "equivalent to answer #2"


def test_math_scorer_scores_zero_without_an_answer(math_scorer: MathScorer) -> None:
    assert math_scorer("it is one half", ["0.5"]).score == 0.0


def test_math_scorer_does_not_hang_on_pathological_input(math_scorer: MathScorer) -> None:
    for pathological in (r"9^{9^{9^{9}}}", r"(10^{10^{10}})!", "{" * 3000 + "1" + "}" * 3000):
        started = time.monotonic()
        result = math_scorer(f"<answer>\\boxed{{{pathological}}}</answer>", ["2"])
        assert result.score == 0.0
        # The budget, plus room for a worker restart after a kill on a slow machine.
        assert time.monotonic() - started < math_scorer.timeout_s + 10


def test_math_scorer_kills_an_overrunning_check_and_recovers() -> None:
    # Built with a 30 s budget, the worker's own alarms allow 10 s per step; cutting the budget to
    # 0.5 s afterwards leaves only the parent's kill to stop the check.
    scorer = MathScorer(timeout_s=30.0, workers=1)
    try:
        assert scorer(r"<answer>\boxed{0.5}</answer>", ["1/2"]).score == 1.0  # a warm worker
        scorer.timeout_s = 0.5
        started = time.monotonic()
        result = scorer(r"<answer>\boxed{9^{9^{9^{9}}}}</answer>", ["2"])
        assert result.reason == "math check timed out after 0.5s"
        assert time.monotonic() - started < 1.5
        scorer.timeout_s = 30.0
        assert scorer(r"<answer>\boxed{0.5}</answer>", ["1/2"]).score == 1.0  # a fresh worker
    finally:
        scorer.close()


def test_math_scorer_is_safe_from_worker_threads(math_scorer: MathScorer) -> None:
    cases = [(r"\frac{1}{2}", "0.5", 1.0), ("3", "4", 0.0)] * 4

    def score(case: tuple[str, str, float]) -> float:
        return math_scorer(f"<answer>\\boxed{{{case[0]}}}</answer>", [case[1]]).score

    with ThreadPoolExecutor(max_workers=4) as pool:
        scores = list(pool.map(score, cases))
    assert scores == [expected for _, _, expected in cases]


# ------------------------------------------------------------------ user python scorer


CONTAINS = """
def score(response, answers):
    print("debug output the scorer prints")
    hit = any(a in response for a in answers)
    return (1.0 if hit else 0.25, "contains the answer" if hit else "missing")
"""


def test_python_scorer_returns_the_user_score_and_reason() -> None:
    tricky = "quotes ' \" ''' \"\"\" backslash \\ newline \n unicode é 中文 and the answer 42"
    result = get_scorer("python", source=CONTAINS)(tricky, ["42"])
    assert (result.score, result.reason) == (1.0, "contains the answer")
    assert result.details["stdout"] == "debug output the scorer prints\n"


def test_python_scorer_accepts_a_bare_number() -> None:
    scorer = PythonScorer("def score(response, answers):\n    return len(answers) / 4\n")
    result = scorer("anything", ["a", "b"])
    assert (result.score, result.reason) == (0.5, "python scorer")


def test_python_scorer_gives_on_error_when_the_user_code_times_out() -> None:
    source = "def score(response, answers):\n    while True:\n        pass\n"
    started = time.monotonic()
    result = PythonScorer(source, timeout_s=1.0, on_error=-0.5)("x", ["y"])
    assert result.score == -0.5
    assert result.reason == "scorer timed out -> -0.5"
    assert time.monotonic() - started < 10


def test_python_scorer_gives_on_error_when_the_user_code_raises() -> None:
    result = PythonScorer("def score(response, answers):\n    return 1 / 0\n")("x", ["y"])
    assert result.score == 0.0
    assert result.reason == "scorer raised ZeroDivisionError: division by zero -> 0"
    assert "ZeroDivisionError" in result.details["traceback"]


def test_python_scorer_gives_on_error_when_no_result_line_comes_back() -> None:
    source = (
        "import os, sys\n"
        "def score(response, answers):\n"
        "    sys.__stdout__.write('garbage')\n"
        "    os._exit(0)\n"
    )
    result = PythonScorer(source)("x", ["y"])
    assert result.score == 0.0
    assert result.reason == "scorer printed no result (no result line) -> 0"
    assert result.details["output"] == "garbage"


@pytest.mark.parametrize("returned", ["'high'", "float('nan')", "(1.0, 2.0, 3.0)", "None"])
def test_python_scorer_gives_on_error_for_a_malformed_score(returned: str) -> None:
    result = PythonScorer(f"def score(response, answers):\n    return {returned}\n")("x", ["y"])
    assert result.score == 0.0
    assert "expected a finite number or (number, reason)" in result.reason


def test_python_scorer_rejects_source_with_a_syntax_error_up_front() -> None:
    with pytest.raises(ValueError, match="syntax error on line 1"):
        PythonScorer("def score(:\n")


def test_python_scorer_rejects_source_without_a_score_function() -> None:
    with pytest.raises(ValueError, match=r"must define score\(response, answers\)"):
        PythonScorer("def grade(response, answers):\n    return 1.0\n")


# ------------------------------------------------------------------ registry


def test_get_scorer_names_the_known_scorers_for_an_unknown_name() -> None:
    known = r"\(known: arpo, exact_match, f1, math, python\)"
    with pytest.raises(ValueError, match=rf"unknown reward scorer 'bleu' {known}"):
        get_scorer("bleu")


def test_get_scorer_names_the_accepted_options_for_an_unknown_option() -> None:
    with pytest.raises(ValueError, match="options: format_penalty, multi_tool_bonus, bonus_kinds"):
        get_scorer("arpo", bonus=0.2)


def test_get_scorer_passes_options_to_the_scorer() -> None:
    scorer = get_scorer("arpo", multi_tool_bonus=0.5)
    assert scorer(tags_trajectory(), ["Paris"], tool_kinds_used={"search", "python"}).score == 1.5


def test_every_text_scorer_reports_correct_and_prediction() -> None:
    for name in ("arpo", "exact_match", "f1"):
        details = SCORERS[name]()(tags_trajectory(), ["Paris"], tool_names_used=["search", "python"]).details
        assert (details["correct"], details["prediction"]) == (True, "Paris"), name


def _path(*parts: tuple[Literal["model", "tool"], str], called: list[str]) -> Path:
    segments = [Segment(kind, 0, 0, text) for kind, text in parts]
    events = [ToolEvent(i + 1, name, {}, "", "", None, 0.0, 0, 0) for i, name in enumerate(called)]
    return Path(id=0, origin="initial", segments=segments, tool_calls=events)


def test_score_path_takes_the_bonus_kinds_from_the_configured_tools() -> None:
    path = _path(
        ("model", "<think>a</think><wiki>capital of France</wiki>"),
        ("tool", TAGS.render_result("Paris is the capital.")),
        ("model", "<calc>1+1</calc>"),
        ("tool", TAGS.render_result("2")),
        ("model", r"<answer>\boxed{Paris}</answer>"),
        called=["wiki", "calc"],
    )
    tools = {"wiki": "search", "calc": "python"}
    result = score_path(arpo, path, ["Paris"], tool_kinds=tools, call_format="tags")
    assert result.reason == "f1=1.00 (+0.1 multi-tool)"


def test_score_path_checks_a_configured_tool_call_that_never_ran() -> None:
    path = _path(("model", r"<think>a</think><answer>\boxed{Paris}</answer><calc>1+1</calc>"), called=[])
    result = score_path(arpo, path, ["Paris"], tool_kinds={"calc": "python"}, call_format="tags")
    assert result.reason == "format: tool call #1 <calc> is not followed by <result>"
