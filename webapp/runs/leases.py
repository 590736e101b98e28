"""The lease on a run: which worker executes it. A redelivered or duplicated `run_execute` message finds
the run leased and leaves; a lease whose holder stopped beating expires and may be taken over.

Rows are never deleted: released and expired leases stay as the run's execution history.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .models import Run, RunLease


@transaction.atomic
def lease_acquire(*, run_id: int, holder: str, ttl_s: float) -> RunLease | None:
    """A new live lease for `holder`, or None when another holder's lease is live (or the row is being
    taken by another worker this very moment: `SKIP LOCKED`, so two takers never wait on each other)."""
    run = Run.objects.select_for_update(skip_locked=True).filter(pk=run_id).first()
    if run is None:
        return None
    now = timezone.now()
    for lease in RunLease.objects.filter(run=run, released_at__isnull=True):
        if lease.expires_at > now:
            return None
        lease.released_at = now
        lease.outcome = "expired"
        lease.save(update_fields=["released_at", "outcome"])
    return RunLease.objects.create(
        run=run, holder=holder, acquired_at=now, heartbeat_at=now, expires_at=now + timedelta(seconds=ttl_s)
    )


@transaction.atomic
def lease_heartbeat(*, lease: RunLease, ttl_s: float) -> bool:
    """Extend our lease; False when it is no longer ours (another worker took it over after it expired).

    A lease that expired while its holder was slow (a busy machine) but that nobody took over is still
    ours. The run's row lock orders this with `lease_acquire`, so a takeover and a late beat never both win.
    """
    Run.objects.select_for_update().filter(pk=lease.run_id).values_list("pk", flat=True).first()
    now = timezone.now()
    updated = RunLease.objects.filter(pk=lease.pk, released_at__isnull=True).update(
        heartbeat_at=now, expires_at=now + timedelta(seconds=ttl_s)
    )
    return updated == 1


def lease_release(*, lease: RunLease, outcome: str) -> None:
    RunLease.objects.filter(pk=lease.pk, released_at__isnull=True).update(released_at=timezone.now(), outcome=outcome)


def live_lease(run: Run) -> RunLease | None:
    return RunLease.objects.filter(run=run, released_at__isnull=True, expires_at__gt=timezone.now()).first()
