"""The run actor relays the SFT cold start's progress as step-less metrics events in phase "sft"."""

from __future__ import annotations

from worker.runner import RunActor


def test_sft_progress_becomes_a_stepless_metrics_event_in_the_sft_phase() -> None:
    actor = RunActor(1, {"checkpoint": {"dir": "unused"}})
    actor._sft_sink(2, {"sft/loss": 1.5, "sft/progress": 0.5})
    events = actor.events.after(0, 10)
    assert [(e["kind"], e["step"]) for e in events] == [("phase", None), ("metrics", None)]
    assert events[0]["data"] == {"phase": "sft"} and events[1]["data"] == {"sft/loss": 1.5, "sft/progress": 0.5}
