"""Runs whose worker died: a worker that consumes the `runs` queue looks for them every half lease and
queues `run_execute` again. The new task takes the expired lease over and attaches to the run's Ray
actor, which kept training meanwhile (or resumes it from its last checkpoint if the actor died too).

The dead worker's own message stays unacknowledged in Redis until the visibility timeout (hours, so
long runs are never redelivered while they are healthy); this is what brings the run back sooner.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)


def recover_once() -> list[int]:
    """Queue `run_execute` for each orphaned run (at most once per two leases, across workers)."""
    from django.core.cache import cache

    from webapp.runs.selectors import orphaned_run_ids
    from worker.tasks import run_execute

    queued = []
    for run_id in orphaned_run_ids():
        if cache.add(f"arpo:runs:recover:{run_id}", 1, timeout=max(1, int(2 * settings.ARPO_RUN_LEASE_S))):
            log.warning("run %s: its worker is gone; queueing it again", run_id)
            run_execute.delay(run_id)
            queued.append(run_id)
    return queued


def _loop(stop: threading.Event) -> None:
    from django.db import close_old_connections

    while not stop.wait(max(1.0, settings.ARPO_RUN_LEASE_S / 2)):
        try:
            close_old_connections()
            recover_once()
        except Exception:  # the database or Redis may be down for a moment; try again next round
            log.exception("run recovery failed")


def start(sender: Any) -> threading.Event | None:
    """Start the recovery loop in a worker that consumes the `runs` queue; returns its stop flag."""
    try:
        queues = {q.name for q in sender.task_consumer.queues}
    except AttributeError:
        queues = {"runs"}
    if "runs" not in queues:
        return None
    stop = threading.Event()
    threading.Thread(target=_loop, args=(stop,), name="run-recovery", daemon=True).start()
    return stop
