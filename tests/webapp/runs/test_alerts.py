"""Run health alerts over hand-made metric histories: each fires on its condition, and only then."""

from __future__ import annotations

from typing import Any

from webapp.runs.alerts import run_alerts


def history(**columns: list[Any]) -> list[tuple[int, dict[str, Any]]]:
    steps = max(len(v) for v in columns.values())
    return [(s + 1, {k: v[s] for k, v in columns.items() if s < len(v)}) for s in range(steps)]


def ids(h: list[tuple[int, dict[str, Any]]], k: int = 10) -> list[str]:
    return [a.id for a in run_alerts(h, k)]


def test_a_healthy_run_has_no_alerts() -> None:
    h = history(**{"tools/calls_total": [3.0] * 30, "groups/degenerate_frac": [0.4] * 30,
                   "entropy/token_mean": [0.9] * 30, "reward/mean": [i / 30 for i in range(30)],
                   "format/ok_frac": [0.8] * 30, "tools/error_rate": [0.05] * 30})  # fmt: skip
    assert ids(h) == []


def test_no_tool_call_in_the_last_k_steps_is_an_error() -> None:
    alerts = run_alerts(history(**{"tools/calls_total": [2.0] * 5 + [0.0] * 10}), 10)
    assert [a.id for a in alerts] == ["no-tool-calls"] and alerts[0].severity == "err"
    assert "SFT" in alerts[0].advice


def test_one_tool_call_in_the_window_silences_it() -> None:
    assert ids(history(**{"tools/calls_total": [0.0] * 9 + [1.0]})) == []


def test_fewer_steps_than_the_window_never_alert() -> None:
    assert ids(history(**{"tools/calls_total": [0.0] * 9})) == []


def test_every_group_degenerate_for_k_steps_is_an_error() -> None:
    assert ids(history(**{"groups/degenerate_frac": [1.0] * 10})) == ["all-degenerate"]
    assert ids(history(**{"groups/degenerate_frac": [1.0] * 9 + [0.5]})) == []


def test_entropy_near_zero_is_a_collapse() -> None:
    assert ids(history(**{"entropy/token_mean": [1.0] * 10 + [0.01] * 10})) == ["entropy-collapse"]


def test_entropy_doubling_above_two_nats_is_an_explosion() -> None:
    assert ids(history(**{"entropy/token_mean": [1.2] * 10 + [3.0] * 10})) == ["entropy-explosion"]
    assert ids(history(**{"entropy/token_mean": [0.5] * 10 + [1.5] * 10})) == []  # tripled, but still low


def test_reward_falling_compares_the_last_window_with_the_one_before() -> None:
    alerts = run_alerts(history(**{"reward/mean": [0.5] * 10 + [0.2] * 10}), 10)
    assert [a.id for a in alerts] == ["reward-falling"] and "0.50 → 0.20" in alerts[0].title
    assert ids(history(**{"reward/mean": [0.5] * 10 + [0.4] * 10})) == []  # within noise


def test_format_valid_rate_falling() -> None:
    assert ids(history(**{"format/ok_frac": [0.9] * 10 + [0.6] * 10})) == ["format-falling"]


def test_tool_error_rate_rising() -> None:
    assert ids(history(**{"tools/error_rate": [0.05] * 10 + [0.4] * 10})) == ["tool-errors-rising"]
    assert ids(history(**{"tools/error_rate": [0.0] * 10 + [0.15] * 10})) == []  # rose, but stays low


def test_missing_and_nan_values_are_skipped_not_counted_as_zero() -> None:
    h = history(**{"tools/calls_total": [None] * 5 + [float("nan")] * 5 + [0.0] * 9})
    assert ids(h) == []


def test_errors_come_before_warnings() -> None:
    h = history(**{"reward/mean": [0.5] * 10 + [0.0] * 10, "tools/calls_total": [0.0] * 20})
    assert ids(h) == ["no-tool-calls", "reward-falling"]
