"""A run whose model never calls a tool is stopped with a reason a person can act on (issue 9, Failure).

The check lives in the run actor's metrics sink; the actor works the same in-process as on Ray.
"""

from __future__ import annotations

from pathlib import Path

from worker.runner import RunActor, RunOptions


def _actor(tmp_path: Path, *, limit: int, tools: bool = True) -> RunActor:
    config = {"tools": [{"name": "python", "kind": "python"}] if tools else [], "checkpoint": {"dir": str(tmp_path)}}
    return RunActor(7, config, options=RunOptions(no_tool_steps=limit))


def test_a_model_that_never_calls_a_tool_is_stopped_after_the_limit_with_advice(tmp_path: Path) -> None:
    actor = _actor(tmp_path, limit=2)
    actor._sink(1, {"tools/calls_total": 0.0, "reward/mean": -1.0})
    assert not actor._stop.is_set() and not actor.fail_reason
    actor._sink(2, {"tools/calls_total": 0.0, "reward/mean": -1.0})
    assert actor._stop.is_set()
    assert "never called a tool in 2 steps" in actor.fail_reason
    assert "add SFT demonstrations" in actor.fail_reason


def test_one_tool_call_early_on_keeps_the_run_going(tmp_path: Path) -> None:
    actor = _actor(tmp_path, limit=2)
    actor._sink(1, {"tools/calls_total": 3.0})
    for step in range(2, 6):
        actor._sink(step, {"tools/calls_total": 0.0})
    assert not actor._stop.is_set() and not actor.fail_reason


def test_runs_without_tools_or_with_the_check_off_are_never_stopped(tmp_path: Path) -> None:
    for actor in (_actor(tmp_path, limit=2, tools=False), _actor(tmp_path, limit=0)):
        for step in range(1, 6):
            actor._sink(step, {"tools/calls_total": 0.0})
        assert not actor._stop.is_set() and not actor.fail_reason
