"""The run actor measures the compute its engine used (wall and CPU seconds, Ray's GPUs × wall) and
reports it with every poll, under its attempt number; in-process, without Ray."""

from __future__ import annotations

import time

from worker.runner import RunActor, RunOptions


def test_the_actor_reports_wall_and_cpu_seconds_of_its_engine_under_its_attempt() -> None:
    actor = RunActor(1, {"not_a_config_key": 1}, options=RunOptions(extra={"attempt": 3}))
    assert actor.poll(0)["usage"] == {"attempt": 3, "wall_s": 0.0, "cpu_s": 0.0, "gpu_s": 0.0}  # not started
    actor.start()
    deadline = time.monotonic() + 60
    while actor.state not in ("succeeded", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.05)
    usage = actor.poll(0)["usage"]
    assert actor.state == "failed"  # the engine refused the config: a short, real run of the actor
    assert usage["attempt"] == 3 and usage["wall_s"] > 0 and usage["cpu_s"] >= 0
    assert usage["gpus"] == 0 and usage["gpu_s"] == 0  # outside Ray nothing was assigned
    time.sleep(0.2)
    assert actor.poll(0)["usage"] == usage  # ended: the numbers stop growing
