"""What the playground page and its websocket send: one message shape for the page's embedded history, the
socket's replay and live events (webapp/frontend/src/live/contract.ts):
`{"seq", "type": "playground.<kind>", "side": "trained" | "base", "data"}`; the session's state travels as
`{"seq": null, "type": "playground.session", "side": null, "data": {"status", "sides"}}`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from django.urls import reverse

from webapp.runs import groups

from . import selectors
from .models import PlaygroundSession

HISTORY_PAGE = 2000
SESSION = "session"  # the kind of the seq-less state message


def client_message(*, kind: str, seq: int | None, side: str | None, data: Mapping[str, Any]) -> dict[str, Any]:
    return {"seq": seq, "type": groups.playground_event_type(kind), "side": side, "data": dict(data)}


def session_state(session: PlaygroundSession) -> dict[str, Any]:
    return {"status": session.status, "sides": dict(session.sides)}


def state_message(session: PlaygroundSession) -> dict[str, Any]:
    """The session's state now (seq null: it moves no resume point)."""
    return client_message(kind=SESSION, seq=None, side=None, data=session_state(session))


def history_messages(*, session: PlaygroundSession, after: int = 0) -> Iterator[dict[str, Any]]:
    while True:
        page = list(selectors.session_events(session=session, after=after, limit=HISTORY_PAGE))
        for event in page:
            yield client_message(kind=event.kind, seq=event.seq, side=event.side, data=event.data)
        if len(page) < HISTORY_PAGE:
            return
        after = page[-1].seq


def urls(session: PlaygroundSession) -> dict[str, str]:
    return {
        "ws_url": f"/ws/playground/{session.pk}/",
        "page_url": reverse("playground:session", kwargs={"session_id": session.pk}),
        "events_url": reverse("api-playground-events", kwargs={"session_id": session.pk}),
    }


def page_config(session: PlaygroundSession | None) -> dict[str, Any]:
    """The page's JSON (frontend playground.ts): the socket URL and the history so far."""
    if session is None:
        return {"session_id": None}
    history = list(history_messages(session=session))
    return {
        "session_id": session.pk,
        "ws_url": urls(session)["ws_url"],
        "last_seq": history[-1]["seq"] if history else 0,
        "state": session_state(session),
        "events": history,
    }
