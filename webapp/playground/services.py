"""Writes of the playground: start a session, record its events, begin and end each side's answer.

A session asks two questions of the worker's `short` queue (worker.tasks.playground_answer): one for the
checkpoint's agent, one for the run's base model. Each person has at most one session queued or running
(a partial unique constraint guarantees it; the check before it gives the readable error). Events are
numbered under the session's row lock and go to its channel-layer group after commit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from webapp.core.errors import DomainError
from webapp.runs import checkpoints, groups
from webapp.runs.models import Run

from . import live, selectors
from .models import PlaygroundEvent, PlaygroundSession

log = logging.getLogger(__name__)

QUESTION_MAX_CHARS = 2000
SIDES = ("trained", "base")  # models.Side
ENDED = ("done", "failed")


def stale_after() -> timedelta:
    """A session still active after this lost its worker (queue wait, two loads and two answers fit well within)."""
    return timedelta(seconds=2 * settings.ARPO_PLAYGROUND_WALL_S + 900)


def clean_question(question: Any) -> str:
    text = question.strip() if isinstance(question, str) else ""
    if not text:
        raise DomainError("Type a question for the agent.", code="empty_question",
                          fields={"question": ["Type a question."]})  # fmt: skip
    if len(text) > QUESTION_MAX_CHARS:
        message = f"The question has {len(text)} characters; the playground takes up to {QUESTION_MAX_CHARS}."
        raise DomainError(message, code="question_too_long", fields={"question": [message]})
    if "\x00" in text:
        raise DomainError("The question contains a NUL character.", code="invalid", fields={"question": ["Bad text."]})
    return text


def session_start(*, user: Any, run: Run, ref: str, question: Any) -> PlaygroundSession:
    """Ask `question` of the checkpoint `ref` (a step, `latest` or `best`) and of the run's base model.

    The run comes from the scoped selector; a checkpoint that is missing or pruned is a NotFound (404).
    """
    text = clean_question(question)
    checkpoint = checkpoints.checkpoint_for(run=run, ref=ref)
    sessions_expire(user=user)
    running = selectors.active_session_of(user)
    if running is not None:
        raise _busy(running)
    try:
        with transaction.atomic():
            session = PlaygroundSession.objects.create(
                **run.owner.fields(), created_by=user, run=run, checkpoint=checkpoint, question=text,
                sides={side: "queued" for side in SIDES},
            )  # fmt: skip
    except IntegrityError:  # a start that raced this one got there first
        running = selectors.active_session_of(user)
        raise _busy(running) from None
    from worker.tasks import playground_answer

    transaction.on_commit(lambda: [playground_answer.delay(session.pk, side) for side in SIDES])
    return session


def _busy(running: PlaygroundSession | None) -> DomainError:
    where = f" (on {running.run.name}, session {running.pk})" if running is not None else ""
    return DomainError(
        f"You have a question being answered already{where}: wait for it to finish, then ask again.",
        code="session_running", status=409,
    )  # fmt: skip


def sessions_expire(*, user: Any) -> int:
    """Fail this person's sessions that stayed active past `stale_after` (their worker is gone)."""
    cutoff = timezone.now() - stale_after()
    stale = PlaygroundSession.objects.filter(
        created_by=user, status__in=(PlaygroundSession.Status.QUEUED, PlaygroundSession.Status.RUNNING),
        created_at__lt=cutoff,
    )  # fmt: skip
    count = 0
    for session in stale:
        for side, state in session.sides.items():
            if state not in ENDED:
                lost = {"code": "lost", "message": "No worker finished this answer; ask again."}
                event_record(session_id=session.pk, side=side, kind="error", data=lost)
                side_end(session_id=session.pk, side=side, ok=False)
        count += 1
    return count


def event_record(*, session_id: int, side: str, kind: str, data: Mapping[str, Any]) -> int:
    """Store one event with the session's next seq; broadcast it after commit. Returns the seq."""
    with transaction.atomic():
        session = PlaygroundSession.objects.select_for_update().only("pk", "last_seq").get(pk=session_id)
        seq = session.last_seq + 1
        PlaygroundSession.objects.filter(pk=session_id).update(last_seq=seq)
        PlaygroundEvent.objects.create(session_id=session_id, seq=seq, side=side, kind=kind, data=dict(data))
        message = {"kind": kind, "seq": seq, "side": side, "data": dict(data)}
        transaction.on_commit(lambda: broadcast(session_id, message))
    return seq


def side_begin(*, session_id: int, side: str) -> bool:
    """Mark a side running; False when it has ended already (a message delivered twice does nothing)."""
    with transaction.atomic():
        session = PlaygroundSession.objects.select_for_update().get(pk=session_id)
        if session.sides.get(side) in ENDED or session.status not in ("queued", "running"):
            return False
        session.sides = {**session.sides, side: "running"}
        if session.status == PlaygroundSession.Status.QUEUED:
            session.status = PlaygroundSession.Status.RUNNING
            session.started_at = timezone.now()
        session.save(update_fields=["sides", "status", "started_at", "updated_at"])
        _broadcast_state(session)
    return True


def side_end(*, session_id: int, side: str, ok: bool) -> None:
    """Mark a side done or failed; the session ends when both have (failed only when both failed)."""
    with transaction.atomic():
        session = PlaygroundSession.objects.select_for_update().get(pk=session_id)
        session.sides = {**session.sides, side: "done" if ok else "failed"}
        if all(session.sides.get(s) in ENDED for s in SIDES):
            any_done = any(session.sides.get(s) == "done" for s in SIDES)
            session.status = PlaygroundSession.Status.DONE if any_done else PlaygroundSession.Status.FAILED
            session.finished_at = timezone.now()
        session.save(update_fields=["sides", "status", "finished_at", "updated_at"])
        _broadcast_state(session)


def _broadcast_state(session: PlaygroundSession) -> None:
    message = {"kind": live.SESSION, "seq": None, "side": None, "data": live.session_state(session)}
    transaction.on_commit(lambda: broadcast(session.pk, message))


def broadcast(session_id: int, event: Mapping[str, Any]) -> None:
    """One event to the session's group (type `playground.<kind>`); never raises: the database has it all."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": groups.playground_event_type(str(event["kind"])), "session": session_id, **event}
    try:
        async_to_sync(layer.group_send)(groups.playground_group(session_id), message)
    except Exception:
        log.warning("playground session %s: event %s not broadcast", session_id, event.get("seq"))
