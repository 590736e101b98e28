"""Reads of the playground. Sessions are tenant-owned: every lookup goes through the scoped selector."""

from __future__ import annotations

import itertools
from typing import Any

from django.db.models import QuerySet

from webapp.core.ownership import get_visible, visible_to
from webapp.runs.models import Checkpoint, Run

from .models import PlaygroundEvent, PlaygroundSession

EXAMPLES = 3


def session_list(*, user: Any) -> QuerySet[PlaygroundSession]:
    return visible_to(PlaygroundSession, user).select_related("run", "run__base_model", "checkpoint", "created_by")


def session_get(*, user: Any, session_id: Any) -> PlaygroundSession:
    """A session the user may see, or NotFound (404) — the same answer as for one that does not exist."""
    return get_visible(session_list(user=user), user, pk=session_id)


def session_events(*, session: PlaygroundSession, after: int = 0, limit: int = 500) -> QuerySet[PlaygroundEvent]:
    """The session's events after seq `after`, oldest first."""
    qs = PlaygroundEvent.objects.filter(session=session, seq__gt=after).order_by("seq")
    return qs[: max(1, min(limit, 5000))]


def recent_sessions(*, user: Any, run: Run, limit: int = 8) -> list[PlaygroundSession]:
    """The questions put to this run's checkpoints lately (by anyone who may see the run)."""
    return list(session_list(user=user).filter(run=run)[:limit])


def active_session_of(user: Any) -> PlaygroundSession | None:
    """The session this person asked that is still queued or being answered."""
    active = (PlaygroundSession.Status.QUEUED, PlaygroundSession.Status.RUNNING)
    return PlaygroundSession.objects.filter(created_by=user, status__in=active).select_related("run").first()


def example_questions(run: Run) -> list[dict[str, str]]:
    """A few prompts of the run's evaluation set (else its training set) with their answers, to try first."""
    from arpo_engine.data import DataError, ScanReport, scan_samples

    data = run.config.get("data") or {}
    path = data.get("eval_path") or data.get("train_path")
    if not path:
        return []
    try:
        rows = list(itertools.islice(scan_samples(path, ScanReport()), EXAMPLES))
    except (DataError, OSError):
        return []
    out = []
    for _, sample in rows:
        question = str(sample.messages[-1].get("content", "")) if sample.messages else ""
        if question:
            out.append({"question": question, "answer": sample.answers[0] if sample.answers else ""})
    return out


def checkpoint_label(checkpoint: Checkpoint) -> str:
    return f"step {checkpoint.step}"
