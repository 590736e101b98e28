"""Runs waiting for room on Ray: two runs launched at once where there is room for one. Real stack: two
Celery worker processes on the `runs` queue (so both runs are leased and relayed at once), the session's
Ray head with one `run_slot` custom resource, and run actors that each ask for it (ARPO_RUN_RESOURCES).

The second run's actor waits for Ray to place it: the run stays `queued`, position 1, until the first
ends and frees the slot; then it starts and trains to the end. The compute each run used is recorded
from its actor, and the waiting time is not part of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.e2e.run_stack import TERMINAL, api, create_run, media_root, python_tool, status_of, tiny_base, wait_for
from tests.worker.fixtures import CeleryWorker, RayHead, _stop, ray_head, start_worker
from webapp.runs.models import Run, RunLease

__all__ = ["api", "create_run", "media_root", "python_tool", "ray_head", "tiny_base"]

pytestmark = pytest.mark.slow


def test_two_runs_launched_at_once_with_room_for_one_the_second_waits_queued_at_position_1_then_runs(
    transactional_db: None,
    api: APIClient,
    create_run: Callable[..., int],
    ray_head: RayHead,
    settings: Any,
    tmp_path: Path,
) -> None:
    extra = {
        **ray_head.env,
        "ARPO_RUN_NUM_CPUS": "0",
        "ARPO_RUN_RESOURCES": "run_slot=1",  # the head has one: room for one run
        "ARPO_RUN_LEASE_S": "10",
        "ARPO_RUN_HEARTBEAT_S": "2",
        "ARPO_RUN_THREADS": "1",
        "ARPO_RUN_NO_TOOL_STEPS": "0",
    }
    ids = [create_run("first", steps=2), create_run("second", steps=2)]
    workers: list[CeleryWorker] = []
    started = time.monotonic()
    try:
        for i in range(2):
            workers.append(start_worker("runs", settings, tmp_path / f"runs-worker-{i}.log", extra, purge=i == 0))
        for run_id in ids:
            assert api.post(f"/api/v1/runs/{run_id}/launch/").status_code == 202

        wait_for(lambda: "running" in {status_of(i) for i in ids}, 240, workers[0], "a run to start")
        running, waiting = ids if status_of(ids[0]) == "running" else ids[::-1]
        # Both are leased: the waiting run's relay has asked Ray for its actor, which cannot be placed yet.
        leased = RunLease.objects.filter(run_id=waiting, released_at__isnull=True)
        wait_for(leased.exists, 60, workers[1], "the second run's lease")
        state = api.get(f"/api/v1/runs/{waiting}/state/").json()
        assert state["status"] == "queued" and state["queue_position"] == 1, state

        checks = 0
        while True:
            waiting_status = status_of(waiting)  # read before the first's: it may only move once the first ended
            if status_of(running) in TERMINAL:
                break
            assert waiting_status == "queued", "the second run started while the first still held the slot"
            checks += 1
            time.sleep(0.5)
        assert checks > 0
        wait_for(lambda: status_of(waiting) in TERMINAL, 240, workers[1], "the second run's end")
    finally:
        for worker in workers:
            _stop(worker.process)
    elapsed = time.monotonic() - started

    first, second = Run.objects.get(pk=running), Run.objects.get(pk=waiting)
    assert first.status == second.status == "succeeded", (first.status_reason, second.status_reason)
    assert first.finished_at is not None and second.started_at is not None
    assert second.started_at >= first.finished_at  # it ran only once the first had ended
    assert second.steps_done == 2 and list(second.metric_points.values_list("step", flat=True)) == [1, 2]
    for run in (first, second):  # compute used, from each actor: the wait is not part of it
        assert run.wall_seconds > 0 and run.cpu_seconds > 0 and set(run.usage) == {"1"}, run.usage
        assert run.finished_at is not None and run.launched_at is not None
        assert run.wall_seconds < (run.finished_at - run.launched_at).total_seconds()
    waited = (second.started_at - second.launched_at).total_seconds()
    assert second.wall_seconds < (second.finished_at - second.launched_at).total_seconds() - waited + 5  # type: ignore[operator]
    print(
        f"\nqueue: both succeeded in {elapsed:.0f} s; the second waited {waited:.0f} s at position 1 "
        f"({checks} checks); compute first {first.wall_seconds:.1f} s wall / {first.cpu_seconds:.1f} CPU-s, "
        f"second {second.wall_seconds:.1f} s wall / {second.cpu_seconds:.1f} CPU-s"
    )
