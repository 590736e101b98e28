"""Worker-side writes of a run's events: the relay hands over what the run's actor emitted, in order.

Idempotent: an event whose sequence number is stored already is skipped, and the per-step tables
(metric points, rollout trees, checkpoints) are upserted by step, so a relay that restarts — or a run
that redoes steps after resuming from a checkpoint — neither loses nor doubles a row. After commit,
each new event goes to the run's channel-layer group (groups.py names them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import groups
from .live import run_state
from .models import Checkpoint, MetricPoint, RolloutTree, Run, RunEvent

FINAL = {"succeeded": Run.Status.SUCCEEDED, "failed": Run.Status.FAILED, "cancelled": Run.Status.CANCELLED}
BEFORE_RUNNING = {Run.Status.QUEUED, Run.Status.STARTING, Run.Status.RESUMING}


def scrub(text: str) -> str:
    """No path of the server in what users read: media and var folders appear by their role."""
    for folder, label in ((settings.MEDIA_ROOT, "media"), (settings.VAR_DIR, "var")):
        text = text.replace(str(folder).rstrip("/"), label)
    return text


def scrub_tree(value: Any) -> Any:
    """`scrub` applied to every string of a JSON-like value (a run's resolved config for the API, the YAML
    export and the run page): the server's folders by their role, dataset and run ids kept."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {k: scrub_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_tree(v) for v in value]
    return value


def _relative(folder: str) -> str:
    try:
        return str(Path(folder).relative_to(Path(settings.MEDIA_ROOT)))
    except ValueError:
        return folder


def _when(event: Mapping[str, Any]) -> datetime:
    return datetime.fromtimestamp(float(event.get("at") or timezone.now().timestamp()), tz=UTC)


@transaction.atomic
def run_events_record(*, run_id: int, events: Sequence[Mapping[str, Any]]) -> int:
    """Store these events (in seq order) and apply them to the run; returns how many were new."""
    run = Run.objects.select_for_update().get(pk=run_id)
    seqs = [int(e["seq"]) for e in events]
    stored = set(RunEvent.objects.filter(run=run, seq__in=seqs).values_list("seq", flat=True))
    new = [e for e in events if int(e["seq"]) not in stored]
    if not new:
        return 0
    rows, metric_rows, tree_rows = [], [], []
    outgoing = []
    for event in new:
        kind, step, data = event["kind"], event.get("step"), dict(event.get("data") or {})
        seq = int(event["seq"])
        stored_data = data
        if kind == RunEvent.Kind.METRICS and step is not None:
            metric_rows.append(MetricPoint(run=run, step=step, seq=seq, values=data))
            run.steps_done = max(run.steps_done, int(step))
        elif kind == RunEvent.Kind.ROLLOUT and step is not None:
            tree_rows.append(
                RolloutTree(
                    run=run, step=step, prompt_index=int(data.get("prompt_index", 0)), seq=seq,
                    reward_mean=float(data.get("reward_mean") or 0.0), size_bytes=len(str(data)), data=data,
                )
            )  # fmt: skip
            stored_data = {k: data.get(k) for k in ("prompt_index", "reward_mean", "truncated")}
        elif kind == RunEvent.Kind.CHECKPOINT and step is not None:
            data["folder"] = _relative(str(data.get("folder", "")))
            Checkpoint.objects.update_or_create(
                run=run, step=step,
                defaults={"seq": seq, "folder": data["folder"], "metrics": data.get("metrics") or {},
                          "size_bytes": int(data.get("size_bytes") or 0)},
            )  # fmt: skip
        elif kind == RunEvent.Kind.LOG:
            data["line"] = scrub(str(data.get("line", "")))
        elif kind == RunEvent.Kind.PHASE:
            run.phase = str(data.get("phase", ""))[:32]
        elif kind == RunEvent.Kind.STATUS:
            _apply_status(run, data)
        rows.append(
            RunEvent(run=run, seq=seq, kind=kind, step=step, data=stored_data,
                     private=bool(event.get("private")), emitted_at=_when(event))
        )  # fmt: skip
        outgoing.append({"kind": kind, "seq": seq, "step": step, "data": data, "private": bool(event.get("private"))})
    RunEvent.objects.bulk_create(rows, ignore_conflicts=True)
    if metric_rows:
        MetricPoint.objects.bulk_create(
            metric_rows, update_conflicts=True, unique_fields=["run", "step"], update_fields=["seq", "values"]
        )
    if tree_rows:
        RolloutTree.objects.bulk_create(
            tree_rows, update_conflicts=True, unique_fields=["run", "step", "prompt_index"],
            update_fields=["seq", "reward_mean", "size_bytes", "data"],
        )  # fmt: skip
    run.last_seq = max(run.last_seq, *seqs)
    run.save(update_fields=["status", "status_reason", "phase", "steps_done", "last_seq", "started_at",
                            "finished_at", "updated_at"])  # fmt: skip
    if any(e["kind"] == RunEvent.Kind.STATUS for e in outgoing):
        # A page gets the whole state the run is now in (status as the database has it, steps, progress, ETA,
        # compute), not the engine's bare word, so nothing it showed of the state before outlives it.
        state = run_state(run)
        outgoing = [{**e, "data": state} if e["kind"] == RunEvent.Kind.STATUS else e for e in outgoing]
    transaction.on_commit(lambda: broadcast(run.pk, outgoing))
    return len(new)


def _apply_status(run: Run, data: Mapping[str, Any]) -> None:
    status = str(data.get("status", ""))
    now = timezone.now()
    if status == "running":
        if run.status in BEFORE_RUNNING:
            run.status = Run.Status.RUNNING
        run.started_at = run.started_at or now
    elif status in FINAL:
        final = FINAL[status]
        if final == Run.Status.CANCELLED and not run.stop_requested:
            final = Run.Status.FAILED  # the engine stopped without being asked: say so, never "cancelled"
        run.status = final
        run.status_reason = scrub(str(data.get("reason") or ""))
        run.finished_at = now
        if data.get("steps_done") is not None:
            run.steps_done = max(run.steps_done, int(data["steps_done"]))


def run_status_set(*, run_id: int, status: str, reason: str = "") -> None:
    """A status the worker decides itself (starting, resuming, failed when the actor is gone …); no event row."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if run.is_terminal:
            return
        run.status = status
        if reason:
            run.status_reason = scrub(reason)
        if status in FINAL.values():
            run.finished_at = timezone.now()
        run.save(update_fields=["status", "status_reason", "finished_at", "updated_at"])
        message = {"kind": "status", "seq": None, "step": None, "data": run_state(run)}
        transaction.on_commit(lambda: broadcast(run_id, [message]))


def broadcast(run_id: int, events: Sequence[Mapping[str, Any]]) -> None:
    """Each event to the run's group (private ones to its owner's group only); never raises."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    send = async_to_sync(layer.group_send)
    for event in events:
        group = groups.run_owner_group(run_id) if event.get("private") else groups.run_group(run_id)
        message = {"type": groups.event_type(str(event["kind"])), "run": run_id, **event}
        try:
            send(group, message)
        except Exception:  # a full or absent channel layer must not stop the relay; the DB has it all
            import logging

            logging.getLogger(__name__).warning("run %s: event %s not broadcast", run_id, event.get("seq"))
    from .live_list import rows_broadcast  # the run list's live rows (one compact message per batch)

    rows_broadcast(run_id, events, send)
