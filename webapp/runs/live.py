"""What the live run page and its websocket send: event messages, the run's state line, the history.

One message shape for the page's embedded history, the websocket replay and live events
(webapp/frontend/src/live/contract.ts): `{"seq", "type": "run.<kind>", "step", "data"}`. A checkpoint
never carries its server folder, only a `download_url`; a replayed rollout carries the summary stored
with its event (the page fetches the whole tree from the rollouts endpoint when it is opened).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from django.urls import reverse
from django.utils import timezone

from . import groups, selectors
from .models import Run, RunEvent

HISTORY_PAGE = 2000  # events per query while replaying; a long run's history is read in pages
# Names a checkpoint download route may have (issue 9's download view); the first that resolves is used.


def checkpoint_download_url(run_id: int, step: int) -> str:
    """The page's download link for a step's checkpoint (a streamed ZIP; access checked by the view)."""
    return reverse("runs:checkpoint_download", kwargs={"pk": run_id, "ref": str(step)})


def client_message(
    *, run_id: int, kind: str, seq: int | None, step: int | None, data: Mapping[str, Any]
) -> dict[str, Any]:
    """An event as the browser gets it."""
    body = dict(data)
    if kind == RunEvent.Kind.CHECKPOINT:
        body.pop("folder", None)
        if step is not None:
            body["step"] = step
            url = checkpoint_download_url(run_id, step)
            if url:
                body["download_url"] = url
            body["try_url"] = reverse("playground:start", kwargs={"pk": run_id, "ref": str(step)})
    return {"seq": seq, "type": groups.event_type(kind), "step": step, "data": body}


def seconds_per_step(run: Run, *, window: int = 20) -> float | None:
    """Mean seconds between the newest metric events (the engine's clock), for the ETA."""
    times = list(
        RunEvent.objects.filter(run=run, kind=RunEvent.Kind.METRICS)
        .order_by("-seq")
        .values_list("emitted_at", flat=True)[: window + 1]
    )
    if len(times) < 2:
        return None
    span = (times[0] - times[-1]).total_seconds()
    return span / (len(times) - 1) if span > 0 else None


def run_state(run: Run) -> dict[str, Any]:
    """The status pane's data: status, reason, progress, ETA, queue position, compute (wall seconds so far)."""
    total = int((run.config.get("train") or {}).get("steps") or 0)
    progress = min(1.0, run.steps_done / total) if total else None
    eta = None
    if run.is_active and total and run.steps_done < total:
        per_step = seconds_per_step(run)
        eta = round(per_step * (total - run.steps_done), 1) if per_step else None
    compute = None
    if run.started_at:
        compute = round(((run.finished_at or timezone.now()) - run.started_at).total_seconds(), 1)
    return {
        "status": run.status,
        "reason": run.status_reason,
        "steps_done": run.steps_done,
        "progress": progress,
        "eta_s": eta,
        "queue_position": selectors.queue_position(run),
        "compute_s": compute,
    }


def status_message(run: Run) -> dict[str, Any]:
    """The run's state now, as an out-of-band status message (seq null: it moves no resume point)."""
    return {"seq": None, "type": groups.event_type(str(RunEvent.Kind.STATUS)), "step": None, "data": run_state(run)}


def history_messages(*, user: Any, run: Run, after: int = 0) -> Iterator[dict[str, Any]]:
    """Every event after `after` the viewer may see (private ones to the owner only), oldest first."""
    while True:
        page = list(selectors.run_events(user=user, run=run, after=after, limit=HISTORY_PAGE))
        for event in page:
            yield client_message(run_id=run.pk, kind=event.kind, seq=event.seq, step=event.step, data=event.data)
        if len(page) < HISTORY_PAGE:
            return
        after = page[-1].seq


def page_history(*, user: Any, run: Run) -> dict[str, Any]:
    """The run page's embedded history (frontend live/config.ts `history`): the socket resumes after last_seq."""
    last_seq = 0
    trees: list[dict[str, Any]] = []
    checkpoints: list[dict[str, Any]] = []
    logs: list[dict[str, Any]] = []
    # Metrics from the same events as everything else, so the page and its socket agree on last_seq;
    # a step redone after a resume keeps its newest values (as MetricPoint does).
    by_step: dict[int, dict[str, Any]] = {}
    for message in history_messages(user=user, run=run):
        last_seq = message["seq"]
        kind = message["type"]
        if kind == "run.metrics" and message["step"] is not None:
            by_step[int(message["step"])] = message["data"]
        elif kind == "run.rollout":
            trees.append({"step": message["step"], "data": message["data"]})
        elif kind == "run.checkpoint":
            checkpoints.append({"step": message["step"], "data": message["data"]})
        elif kind == "run.log":
            logs.append(message["data"])
    metrics = [{"step": step, "values": by_step[step]} for step in sorted(by_step)]
    return {
        "last_seq": last_seq,
        "status": run_state(run),
        "phase": run.phase,
        "metrics": metrics,
        "trees": trees,
        "checkpoints": checkpoints,
        "logs": logs,
    }


def page_config(*, user: Any, run: Run) -> dict[str, Any]:
    """The run page's JSON config (webapp/frontend/README.md, "Run page")."""
    return {
        "run_id": run.pk,
        "ws_url": f"/ws/runs/{run.pk}/",
        "total_steps": int((run.config.get("train") or {}).get("steps") or 0) or None,
        "tree_url": reverse("api-run-rollouts", kwargs={"pk": run.pk}) + "?step={step}",
        "head_url": reverse("runs:head", kwargs={"pk": run.pk}),
        "tool_names": [t.name for t in selectors.run_tools(run)],
        "history": page_history(user=user, run=run),
    }
