"""The run's websocket (`/ws/runs/<id>/`): its history, then every new event as it happens.

Who: the browser's session (its Origin must be one of ALLOWED_HOSTS), or an API token for other clients —
`Authorization: Token <t>` (as the REST API), or, for a client that cannot set headers, the subprotocols
`["arpo.v1", "arpo.token.<t>"]` (the server answers `arpo.v1`). Never a token in the URL: URLs end up in
access logs. A socket from a foreign Origin is refused whatever its credentials.

Refusals are sent after the handshake, so that the client can read the code: 4401 not signed in (or a
bad token), 4403 origin refused, 4404 no such run or not visible (the scoped selector decides). The
client does not retry those.

Resume: after connecting the client sends `{"type": "resume", "after": N}` (or puts `?after=N` in the
URL); the server sends every event with seq > N the viewer may see, `history.end`, then live events.
No gaps, no repeats: the socket joins the run's group *before* it reads the history; live events that
arrive meanwhile wait in a buffer (or in the channel while the replay runs) and only those newer than
the last one sent go out. A live event after a hole in the sequence (a message the channel layer
dropped) first fills the hole from the database.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs, urlparse

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.http.request import validate_host

from webapp.core.errors import NotFound

from . import groups, live, selectors
from .models import Run

log = logging.getLogger(__name__)

PROTOCOL = "arpo.v1"
TOKEN_PROTOCOL = "arpo.token."
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
BUFFER_MAX = 10_000  # live events held before the replay; past it they are dropped and refilled from the database


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _allowed_hosts() -> list[str]:
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:  # Django's own default for DEBUG
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def origin_allowed(origin: str | None) -> bool:
    if not origin:
        return False
    host = urlparse(origin).hostname
    if not host:
        return False
    if ":" in host:  # an IPv6 literal, as ALLOWED_HOSTS spells it
        host = f"[{host}]"
    return validate_host(host, _allowed_hosts())


def token_of(scope: dict[str, Any]) -> str | None:
    """The API token a non-browser client sent, if any."""
    header = _header(scope, b"authorization")
    if header and header.split(" ", 1)[0].lower() == "token" and " " in header:
        return header.split(" ", 1)[1].strip()
    for protocol in scope.get("subprotocols") or []:
        if protocol.startswith(TOKEN_PROTOCOL):
            return str(protocol[len(TOKEN_PROTOCOL) :])
    return None


@database_sync_to_async
def _token_user(token: str) -> Any | None:
    from rest_framework.exceptions import AuthenticationFailed

    from webapp.accounts.auth import ApiTokenAuthentication

    try:
        user, _ = ApiTokenAuthentication().authenticate_credentials(token.encode())
    except AuthenticationFailed:
        return None
    return user


async def viewer(scope: dict[str, Any]) -> tuple[Any, int | None]:
    """Who is connecting, or the close code that refuses them (origin first, then credentials)."""
    origin = _header(scope, b"origin")
    token = token_of(scope)
    if origin is not None and not origin_allowed(origin):
        return None, CLOSE_FORBIDDEN
    if token is not None:
        user = await _token_user(token)
        return (user, None) if user is not None else (None, CLOSE_UNAUTHENTICATED)
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return None, CLOSE_UNAUTHENTICATED
    if origin is None:  # a session cookie without an Origin is not a browser of ours
        return None, CLOSE_FORBIDDEN
    return user, None


@database_sync_to_async
def _list_groups(user: Any) -> list[str]:
    from webapp.accounts.selectors import teams_for

    return [groups.runs_user_group(user.pk), *(groups.runs_team_group(t.pk) for t in teams_for(user=user))]


@database_sync_to_async
def _visible_run(user: Any, run_id: int) -> tuple[Run, bool] | None:
    try:
        run = selectors.run_get(user=user, run_id=run_id)
    except NotFound:
        return None
    return run, selectors.is_run_owner(user, run)


@database_sync_to_async
def _history(user: Any, run_id: int, after: int) -> list[dict[str, Any]]:
    run = Run.objects.get(pk=run_id)
    return [live.status_message(run), *live.history_messages(user=user, run=run, after=after)]


@database_sync_to_async
def _between(user: Any, run_id: int, after: int, before: int) -> list[dict[str, Any]]:
    run = Run.objects.get(pk=run_id)
    return [m for m in live.history_messages(user=user, run=run, after=after) if m["seq"] < before]


class SequencedConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """The protocol of a numbered event stream (module docstring): auth, history, resume, live, no gaps or
    repeats. A subclass says which object (`authorize`: the groups to join, or a refusal), how to read its
    history (`history`, `between`) and how a group message becomes a client message (`message`).
    State: `last_sent` (seq), `live` (replay done), `buffer` (before the replay)."""

    async def connect(self) -> None:
        self.joined: list[str] = []
        self.live = False
        self.replaying = False
        self.buffer: list[dict[str, Any]] = []
        self.last_sent = 0
        offered = self.scope.get("subprotocols") or []
        await self.accept(PROTOCOL if PROTOCOL in offered else None)
        user, refusal = await viewer(self.scope)
        if refusal is None:
            self.user = user
            found = await self.authorize(user)
            refusal = CLOSE_NOT_FOUND if found is None else None
            self.joined = found or []
        if refusal is not None:
            await self.close(code=refusal)
            return
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        after = parse_qs(self.scope.get("query_string", b"").decode()).get("after")
        if after:
            await self._replay(_as_int(after[0]))

    async def authorize(self, user: Any) -> list[str] | None:
        """The groups this viewer listens to, or None when the object is missing or not theirs (4404)."""
        raise NotImplementedError

    async def history(self, after: int) -> list[dict[str, Any]]:
        """The state line (seq null), then every event after `after` the viewer may see, oldest first."""
        raise NotImplementedError

    async def between(self, after: int, before: int) -> list[dict[str, Any]]:
        """The events with after < seq < before (a hole a dropped channel message left)."""
        raise NotImplementedError

    def message(self, event: dict[str, Any]) -> dict[str, Any]:
        """A group message as the client gets it."""
        raise NotImplementedError

    async def disconnect(self, code: int) -> None:
        for group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not self.joined or not isinstance(content, dict) or content.get("type") != "resume":
            return
        if self.live or self.replaying:
            return  # one replay per connection; a client that wants another reconnects
        await self._replay(_as_int(content.get("after")))

    async def _replay(self, after: int) -> None:
        self.replaying = True
        self.last_sent = after
        # While this runs, new group messages wait in the channel; the buffer holds those that came before.
        for message in await self.history(after):
            await self._send(message)
        await self.send_json({"seq": self.last_sent, "type": "history.end", "data": {}})
        buffered, self.buffer = self.buffer, []
        self.live = True
        for message in buffered:
            if message["seq"] is not None:  # a seq-less status older than the state line just sent is stale
                await self._deliver(message)

    async def _send(self, message: dict[str, Any]) -> None:
        if message["seq"] is not None:
            if message["seq"] <= self.last_sent:
                return
            self.last_sent = message["seq"]
        await self.send_json(message)

    async def _deliver(self, message: dict[str, Any]) -> None:
        seq = message["seq"]
        if seq is not None and seq > self.last_sent + 1:
            for missed in await self.between(self.last_sent, seq):
                await self._send(missed)
        await self._send(message)

    async def stream_event(self, event: dict[str, Any]) -> None:
        """Any event from the object's groups: buffered until the replay is done."""
        message = self.message(event)
        if not self.live:
            if len(self.buffer) < BUFFER_MAX:
                self.buffer.append(message)
            return
        await self._deliver(message)


class RunConsumer(SequencedConsumer):
    """One viewer of one run (`/ws/runs/<id>/`)."""

    async def connect(self) -> None:
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        await super().connect()

    async def authorize(self, user: Any) -> list[str] | None:
        found = await _visible_run(user, self.run_id)
        if found is None:
            return None
        joined = [groups.run_group(self.run_id)]
        if found[1]:
            joined.append(groups.run_owner_group(self.run_id))
        return joined

    async def history(self, after: int) -> list[dict[str, Any]]:
        return await _history(self.user, self.run_id, after)

    async def between(self, after: int, before: int) -> list[dict[str, Any]]:
        return await _between(self.user, self.run_id, after, before)

    def message(self, event: dict[str, Any]) -> dict[str, Any]:
        return live.client_message(
            run_id=self.run_id, kind=str(event["kind"]), seq=event.get("seq"), step=event.get("step"),
            data=event.get("data") or {},
        )  # fmt: skip

    # Channel message types are "run.<kind>" (groups.event_type): Channels calls run_<kind>.
    run_metrics = run_eval = run_rollout = run_checkpoint = run_log = run_phase = run_status = (
        SequencedConsumer.stream_event
    )


def _as_int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


class RunListConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """The run list (`/ws/runs/`): a `runs.row` for each change of a run the viewer may see (their own
    runs and their teams'), as `{"type": "runs.row", "run": id, "status": …, "metrics": {…}, …}`.
    Rows carry no history: a list that reconnects reloads its rows from the page (or the REST API)."""

    async def connect(self) -> None:
        self.joined: list[str] = []
        offered = self.scope.get("subprotocols") or []
        await self.accept(PROTOCOL if PROTOCOL in offered else None)
        user, refusal = await viewer(self.scope)
        if refusal is not None:
            await self.close(code=refusal)
            return
        self.joined = await _list_groups(user)
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        for group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def runs_row(self, event: dict[str, Any]) -> None:
        await self.send_json(event)
