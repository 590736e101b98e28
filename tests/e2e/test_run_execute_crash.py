"""Runs survive crashes, on the real stack: SIGKILL the Celery worker mid-run, or kill the run's Ray actor.

The run must end `succeeded` with exactly the configured steps, no metric step missing or doubled,
no event sequence number missing or doubled, and (for the worker) never two holders at once.
"""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.e2e.run_stack import (
    TERMINAL,
    api,
    create_run,
    media_root,
    python_tool,
    status_of,
    tiny_base,
    wait_for,
)
from tests.worker.fixtures import RayHead, _stop, ray_head, start_worker
from webapp.runs.models import MetricPoint, Run, RunEvent, RunLease

__all__ = ["api", "create_run", "media_root", "python_tool", "ray_head", "tiny_base"]

pytestmark = pytest.mark.slow

STEPS = 5


def worker_env(ray_head: RayHead) -> dict[str, str]:
    return {**ray_head.env, "ARPO_RUN_NUM_CPUS": "0", "ARPO_RUN_LEASE_S": "8", "ARPO_RUN_HEARTBEAT_S": "1", "ARPO_RUN_NO_TOOL_STEPS": "0",
            "ARPO_RUN_THREADS": "2"}  # fmt: skip


def assert_complete(run_id: int) -> Run:
    run = Run.objects.get(pk=run_id)
    assert run.status == "succeeded", run.status_reason
    assert run.steps_done == STEPS
    assert list(MetricPoint.objects.filter(run=run).values_list("step", flat=True)) == list(range(1, STEPS + 1))
    seqs = list(RunEvent.objects.filter(run=run).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)) and run.last_seq == len(seqs)
    return run


def test_a_run_whose_worker_is_killed_completes_under_a_new_worker_and_never_runs_twice(
    transactional_db: None, api: APIClient, create_run: Callable[..., int], ray_head: RayHead, settings: Any,
    tmp_path: Path,
) -> None:  # fmt: skip
    run_id = create_run("crash-worker", steps=STEPS)
    first = start_worker("runs", settings, tmp_path / "worker-1.log", worker_env(ray_head))
    try:
        assert api.post(f"/api/v1/runs/{run_id}/launch/").status_code == 202
        wait_for(lambda: MetricPoint.objects.filter(run_id=run_id).exists(), 180, first, "a first step")
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
    finally:
        _stop(first.process)
    second = start_worker("runs", settings, tmp_path / "worker-2.log", worker_env(ray_head), purge=False)
    try:
        wait_for(lambda: status_of(run_id) in TERMINAL, 240, second, "the run's end")
        # The run's state turns terminal before the relay has released its lease: let it finish before the
        # worker is stopped, or the stop interrupts that bookkeeping.
        unreleased = RunLease.objects.filter(run_id=run_id, released_at__isnull=True)
        wait_for(lambda: not unreleased.exists(), 60, second, "the lease's release")
    finally:
        _stop(second.process)
    run = assert_complete(run_id)
    assert run.attempts == 1  # the actor kept training; the new worker attached to it
    leases = list(RunLease.objects.filter(run=run).order_by("acquired_at"))
    assert len(leases) >= 2
    for before, after in itertools.pairwise(leases):
        assert before.expires_at <= after.acquired_at, "two workers held the run at once"
    assert leases[0].outcome == "expired" and leases[-1].outcome == "finished"


def test_a_run_whose_actor_is_killed_resumes_from_its_last_checkpoint(
    transactional_db: None, api: APIClient, create_run: Callable[..., int], ray_head: RayHead, settings: Any,
    tmp_path: Path,
) -> None:  # fmt: skip
    run_id = create_run("crash-actor", steps=STEPS)
    worker = start_worker("runs", settings, tmp_path / "worker.log", worker_env(ray_head))
    try:
        assert api.post(f"/api/v1/runs/{run_id}/launch/").status_code == 202
        wait_for(lambda: MetricPoint.objects.filter(run_id=run_id, step__gte=2).exists(), 180, worker, "two steps")
        running = RunEvent.objects.filter(run_id=run_id, kind="status", data__status="running").first()
        assert running is not None
        os.kill(int(running.data["pid"]), signal.SIGKILL)
        wait_for(lambda: status_of(run_id) in TERMINAL, 240, worker, "the run's end")
    finally:
        _stop(worker.process)
    run = assert_complete(run_id)
    assert run.attempts == 2
    lines = [e.data.get("line", "") for e in RunEvent.objects.filter(run=run, kind="log")]
    assert any(line.startswith("resuming from") for line in lines), lines
