"""The run list's live rows: progress, key metrics, sparklines and alerts per run, and the compact
`runs.row` message the relay's broadcast sends to the list groups (groups.run_list_groups) on each change.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from django.db.models import Q

from . import alerts, groups
from .models import MetricPoint, Run

log = logging.getLogger(__name__)

SPARK_STEPS = 40  # the newest steps a row's sparkline and alerts look at (two alert windows fit)
LIST_LIMIT = 200  # rows that get metrics on one page; older ones show status and progress only
# The list's key metrics: (metric, column label, format for the front end's formatValue).
KEY_METRICS = (("reward/mean", "Reward", "number"), ("accuracy", "Accuracy", "percent"),
               ("tools/calls_per_traj", "Tool calls / traj.", "number"))  # fmt: skip
SPARK_METRIC = "reward/mean"
ROW_KINDS = frozenset({"metrics", "status", "phase", "checkpoint"})


def total_steps(run: Run) -> int:
    return int((run.config.get("train") or {}).get("steps") or 0)


def progress(run: Run) -> float | None:
    total = total_steps(run)
    return min(1.0, run.steps_done / total) if total and not run.is_draft else None


def _histories(runs: Sequence[Run]) -> dict[int, list[tuple[int, dict[str, Any]]]]:
    """The newest SPARK_STEPS metric points of each run, oldest first, in one query."""
    started = [r for r in runs[:LIST_LIMIT] if not r.is_draft and r.steps_done > 0]
    if not started:
        return {}
    window = Q()
    for run in started:
        window |= Q(run_id=run.pk, step__gt=run.steps_done - SPARK_STEPS)
    points: dict[int, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for run_id, step, values in (
        MetricPoint.objects.filter(window).order_by("run_id", "step").values_list("run_id", "step", "values")
    ):
        points[run_id].append((step, values))
    return points


def row(run: Run, history: Sequence[tuple[int, Mapping[str, Any]]]) -> dict[str, Any]:
    """One list row's live part."""
    latest: dict[str, Any] = {}
    for _, values in history:
        latest.update({k: v for k, v in values.items() if v is not None})
    return {
        "progress": progress(run),
        "total_steps": total_steps(run),
        "metrics": [{"key": m, "label": label, "format": fmt, "value": latest.get(m)} for m, label, fmt in KEY_METRICS],
        "spark": [values.get(SPARK_METRIC) for _, values in history],
        "alerts": [a.as_dict() for a in alerts.run_alerts(history)],
    }


def rows_for(runs: Iterable[Run]) -> list[tuple[Run, dict[str, Any]]]:
    """Each run with its row, for the list page."""
    runs = list(runs)
    histories = _histories(runs)
    return [(run, row(run, histories.get(run.pk, []))) for run in runs]


def row_message(run: Run, events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The `runs.row` message of these new events: the row's state, and the newest step's key metrics."""
    step, metrics = None, {}
    for event in events:
        if event.get("kind") == "metrics" and event.get("step") is not None:
            step, metrics = event["step"], dict(event.get("data") or {})
    return {
        "type": groups.ROW_EVENT,
        "run": run.pk,
        "status": run.status,
        "status_label": run.get_status_display(),
        "reason": run.status_reason,
        "phase": run.phase,
        "steps_done": run.steps_done,
        "total_steps": total_steps(run),
        "progress": progress(run),
        "step": step,
        "metrics": {m: metrics.get(m) for m, _, _ in KEY_METRICS if m in metrics},
        "spark": metrics.get(SPARK_METRIC) if step is not None else None,
    }


def rows_broadcast(
    run_id: int, events: Sequence[Mapping[str, Any]], send: Callable[[str, dict[str, Any]], Any]
) -> None:
    """After the run's own events went out (recording.broadcast): the list row, to the list groups. Never raises."""
    if not any(e.get("kind") in ROW_KINDS and not e.get("private") for e in events):
        return
    try:
        run = Run.objects.only(
            "id", "status", "status_reason", "phase", "steps_done", "config", "owner_user_id", "owner_team_id"
        ).get(pk=run_id)
        message = row_message(run, events)
        for group in groups.run_list_groups(owner_user_id=run.owner_user_id, owner_team_id=run.owner_team_id):
            send(group, message)
    except Exception:  # the list is a convenience; the run's own events and the database have it all
        log.warning("run %s: list row not broadcast", run_id, exc_info=True)
