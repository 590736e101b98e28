"""A playground session's websocket (`/ws/playground/<id>/`): the run socket's protocol for another stream.

Same auth (session with its Origin checked, or an API token by header or subprotocol), the same close
codes (4401, 4403, 4404 for a session the scoped selector does not show), the same resume from a seq with
`history.end` and no gaps or repeats (webapp/runs/consumers.py). Messages: live.py.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from webapp.core.errors import NotFound
from webapp.runs import groups
from webapp.runs.consumers import SequencedConsumer

from . import live, selectors
from .models import PlaygroundSession


@database_sync_to_async
def _visible(user: Any, session_id: int) -> bool:
    try:
        selectors.session_get(user=user, session_id=session_id)
    except NotFound:
        return False
    return True


@database_sync_to_async
def _history(session_id: int, after: int) -> list[dict[str, Any]]:
    session = PlaygroundSession.objects.get(pk=session_id)
    return [live.state_message(session), *live.history_messages(session=session, after=after)]


@database_sync_to_async
def _between(session_id: int, after: int, before: int) -> list[dict[str, Any]]:
    session = PlaygroundSession.objects.get(pk=session_id)
    return [m for m in live.history_messages(session=session, after=after) if m["seq"] < before]


class PlaygroundConsumer(SequencedConsumer):
    async def connect(self) -> None:
        self.session_id = int(self.scope["url_route"]["kwargs"]["session_id"])
        await super().connect()

    async def authorize(self, user: Any) -> list[str] | None:
        return [groups.playground_group(self.session_id)] if await _visible(user, self.session_id) else None

    async def history(self, after: int) -> list[dict[str, Any]]:
        return await _history(self.session_id, after)

    async def between(self, after: int, before: int) -> list[dict[str, Any]]:
        return await _between(self.session_id, after, before)

    def message(self, event: dict[str, Any]) -> dict[str, Any]:
        return live.client_message(
            kind=str(event["kind"]), seq=event.get("seq"), side=event.get("side"), data=event.get("data") or {}
        )

    # Channel message types are "playground.<kind>" (groups.playground_event_type).
    playground_status = playground_model = playground_tool_call = playground_tool_result = playground_final = (
        SequencedConsumer.stream_event
    )
    playground_error = playground_session = SequencedConsumer.stream_event
