"""A resumed run re-sends its resume step's metrics and checkpoint when the database lacks them: the actor that
saved them may have died before the relay collected that step's events (seen: a run killed just after step 3
came back as 1, 2, 4, 5)."""

from __future__ import annotations

import json
from pathlib import Path

from arpo_engine.checkpoint import COMPLETE
from worker.runner import RunActor, RunOptions, cancelled_reason


def saved_step(run_dir: Path, step: int, metrics: dict, *, complete: bool = True) -> None:
    model_dir, resume_dir = run_dir / f"step-{step}", run_dir / "resume" / f"step-{step}"
    model_dir.mkdir(parents=True)
    resume_dir.mkdir(parents=True)
    (model_dir / "config.json").write_text("{}")
    (model_dir / "run.json").write_text(json.dumps({"step": step, "metrics": metrics}))
    if complete:
        (resume_dir / COMPLETE).write_text("{}")


def test_the_step_a_run_resumes_from_is_sent_again(tmp_path: Path) -> None:
    run_dir = tmp_path / "run-4"
    saved_step(run_dir, 2, {"reward/mean": 0.25})
    saved_step(run_dir, 3, {"reward/mean": 0.5, "eval/accuracy": 0.75, "loss/policy": None})
    saved_step(run_dir, 4, {"reward/mean": 0.9}, complete=False)  # its resume folder was never finished
    actor = RunActor(4, {"checkpoint": {"dir": str(tmp_path)}}, options=RunOptions(recorded_through=2))
    actor._replay_resume_step()
    events = actor.events.after(0, 10)
    assert [(e["kind"], e["step"]) for e in events] == [("metrics", 3), ("eval", 3), ("checkpoint", 3)]
    assert events[0]["data"] == {"reward/mean": 0.5, "eval/accuracy": 0.75}
    assert events[2]["data"]["folder"] == str(run_dir / "step-3")


def test_a_fresh_run_sends_nothing(tmp_path: Path) -> None:
    actor = RunActor(5, {"checkpoint": {"dir": str(tmp_path)}})
    actor._replay_resume_step()
    assert actor.events.after(0, 10) == []


def test_a_step_the_database_already_holds_is_not_sent_twice(tmp_path: Path) -> None:
    """A run its owner cancelled and resumed: its last step was recorded, so the event log stays one per step."""
    saved_step(tmp_path / "run-6", 3, {"reward/mean": 0.5})
    actor = RunActor(6, {"checkpoint": {"dir": str(tmp_path)}}, options=RunOptions(recorded_through=3))
    actor._replay_resume_step()
    assert actor.events.after(0, 10) == []


def test_a_cancelled_run_says_whether_it_kept_a_checkpoint(tmp_path: Path) -> None:
    actor = RunActor(7, {"checkpoint": {"dir": str(tmp_path)}})
    assert not actor._checkpoint_kept()
    assert cancelled_reason(actor._checkpoint_kept()).startswith("Cancelled before its first checkpoint")
    saved_step(tmp_path / "run-7", 3, {"reward/mean": 0.5})
    assert cancelled_reason(actor._checkpoint_kept()) == "Cancelled; the last checkpoint is kept."
