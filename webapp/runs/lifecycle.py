"""Services that move a run through its life: launch, cancel, resume (ARCHITECTURE.md, "A run's life").

`draft -> queued -> starting -> running -> succeeded | failed | cancelled`, with `cancelling` and
`resuming` in between. The web side only changes the row and, after commit, enqueues `run_execute`
on the `runs` queue; the worker's relay does the rest (worker/relay.py).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from webapp.core.errors import DomainError

from . import leases, recording
from .models import Run
from .services import run_revalidate


def _enqueue(run_id: int) -> None:
    from worker.tasks import run_execute

    run_execute.delay(run_id)


def _locked(run: Run) -> Run:
    return Run.objects.select_for_update().get(pk=run.pk)


@transaction.atomic
def run_launch(*, user: Any, run: Run) -> Run:
    """Check the draft once more (its dataset or tools may have changed), then queue it."""
    run = _locked(run)
    if not run.is_draft:
        raise DomainError(f"Run {run.name} is {run.get_status_display().lower()}; only a draft can be launched.",
                          code="not_draft", status=409)  # fmt: skip
    run = run_revalidate(user=user, run=run)
    if not run.launchable:
        first = next(iter(run.errors.items()), ("config", ["is not valid"]))
        raise DomainError(f"The run cannot start: {first[0]}: {first[1][0]}", code="not_launchable",
                          fields=run.errors, status=409)  # fmt: skip
    run.status = Run.Status.QUEUED
    run.launched_at = timezone.now()
    run.stop_requested = False
    run.status_reason = ""
    run.save(update_fields=["status", "launched_at", "stop_requested", "status_reason", "updated_at"])
    run_id = run.pk
    transaction.on_commit(lambda: _enqueue(run_id))
    return run


@transaction.atomic
def run_cancel(*, user: Any, run: Run) -> Run:
    """Stop a run: a queued one that no worker holds is cancelled at once; otherwise `cancelling`, and the
    relay passes the flag to the engine, which stops between phases (the last checkpoint is kept)."""
    run = _locked(run)
    if not run.is_active:
        raise DomainError(f"Run {run.name} is {run.get_status_display().lower()}; there is nothing to cancel.",
                          code="not_active", status=409)  # fmt: skip
    run.stop_requested = True
    if run.status == Run.Status.QUEUED and leases.live_lease(run) is None:
        run.status = Run.Status.CANCELLED
        run.status_reason = "Cancelled before it started."
        run.finished_at = timezone.now()
    elif run.status != Run.Status.CANCELLING:
        run.status = Run.Status.CANCELLING
    run.save(update_fields=["stop_requested", "status", "status_reason", "finished_at", "updated_at"])
    message = {"kind": "status", "seq": None, "step": None, "data": {"status": run.status}}
    run_id = run.pk
    transaction.on_commit(lambda: recording.broadcast(run_id, [message]))
    return run


@transaction.atomic
def run_resume(*, user: Any, run: Run) -> Run:
    """Continue a cancelled or failed run from its last checkpoint, under the same run id, up to the
    configured number of steps (the engine finds the checkpoint itself)."""
    run = _locked(run)
    if run.status not in (Run.Status.CANCELLED, Run.Status.FAILED):
        raise DomainError(f"Run {run.name} is {run.get_status_display().lower()}; only a stopped or failed run "
                          "can be resumed.", code="not_resumable", status=409)  # fmt: skip
    run.status = Run.Status.QUEUED
    run.stop_requested = False
    run.status_reason = ""
    run.finished_at = None
    run.launched_at = timezone.now()
    run.save(update_fields=["status", "stop_requested", "status_reason", "finished_at", "launched_at", "updated_at"])
    run_id = run.pk
    transaction.on_commit(lambda: _enqueue(run_id))
    return run
