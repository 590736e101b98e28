"""A playground session's websocket on the real Redis channel layer: the state line and the history, then
live events in order; resume from a seq without gaps or repeats; refusals (4401 anonymous, 4403 foreign
origin, 4404 outsider or missing). Events go through the worker's own service (services.event_record),
which stores them and broadcasts after commit, as an answering worker does."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from tests.webapp import factories as make
from tests.webapp.playground.conftest import checkpointed_run
from tests.webapp.runs.ws_testing import WebsocketCommunicator
from webapp.accounts.models import Team
from webapp.playground import services
from webapp.playground.models import PlaygroundSession
from webapp.routing import websocket_urlpatterns

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

APP = AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
ORIGIN = (b"origin", b"http://testserver")
WAIT = 3


@pytest_asyncio.fixture(autouse=True)
async def _close_worker_connections() -> Any:
    yield
    from django.db import connections

    await database_sync_to_async(connections.close_all)()


def _session(user: User, team: Team | None = None) -> PlaygroundSession:
    """A session as session_start makes it, without sending its tasks (nothing would answer them here)."""
    run = checkpointed_run(user, team=team)
    checkpoint = run.checkpoints.get(step=2)
    return PlaygroundSession.objects.create(**run.owner.fields(), created_by=user, run=run, checkpoint=checkpoint,
                                            question="How old is Senna?", sides={"trained": "queued", "base": "queued"})  # fmt: skip


def _chunks(session_id: int, *texts: str, side: str = "trained") -> list[int]:
    return [services.event_record(session_id=session_id, side=side, kind="model", data={"text": t}) for t in texts]


session_of = database_sync_to_async(_session)
chunks = database_sync_to_async(_chunks)


def _cookie(user: User) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode())


async def _connect(session_id: int, *headers: tuple[bytes, bytes], query: str = "") -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(APP, f"/ws/playground/{session_id}/{query}", headers=list(headers))
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def _as(user: User, session_id: int, query: str = "") -> WebsocketCommunicator:
    cookie = await database_sync_to_async(_cookie)(user)
    return await _connect(session_id, cookie, ORIGIN, query=query)


async def _until_history_end(ws: WebsocketCommunicator) -> list[dict[str, Any]]:
    messages = []
    while True:
        message = await ws.receive_json_from(timeout=WAIT)
        messages.append(message)
        if message["type"] == "history.end":
            return messages


async def _closed_with(ws: WebsocketCommunicator) -> int:
    output = await ws.receive_output(timeout=WAIT)
    assert output["type"] == "websocket.close"
    await ws.disconnect()
    return int(output["code"])


async def test_the_state_and_history_come_first_then_live_events_in_order(alice: User) -> None:
    session = await session_of(alice)
    await chunks(session.pk, "<think>Senna was ", "born in 1897")
    ws = await _as(alice, session.pk)
    await ws.send_json_to({"type": "resume", "after": 0})
    history = await _until_history_end(ws)
    assert history[0] == {"seq": None, "type": "playground.session", "side": None,
                          "data": {"status": "queued", "sides": {"trained": "queued", "base": "queued"}}}  # fmt: skip
    assert [(m["seq"], m["type"]) for m in history[1:]] == [
        (1, "playground.model"), (2, "playground.model"), (2, "history.end")
    ]  # fmt: skip
    assert history[2]["side"] == "trained" and history[2]["data"] == {"text": "born in 1897"}

    await database_sync_to_async(services.side_begin)(session_id=session.pk, side="base")
    await chunks(session.pk, "Hello", side="base")
    state = await ws.receive_json_from(timeout=WAIT)
    assert state["type"] == "playground.session" and state["data"]["sides"]["base"] == "running"
    live = await ws.receive_json_from(timeout=WAIT)
    assert (live["seq"], live["side"], live["data"]) == (3, "base", {"text": "Hello"})
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


async def test_a_client_that_resumes_from_a_seq_gets_exactly_what_it_missed(alice: User) -> None:
    session = await session_of(alice)
    await chunks(session.pk, "a", "b", "c", "d")
    ws = await _as(alice, session.pk)
    await ws.send_json_to({"type": "resume", "after": 2})
    assert [m["seq"] for m in await _until_history_end(ws)] == [None, 3, 4, 4]
    await chunks(session.pk, "e")
    assert (await ws.receive_json_from(timeout=WAIT))["seq"] == 5
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


async def test_events_sent_between_connect_and_resume_arrive_once(alice: User) -> None:
    session = await session_of(alice)
    await chunks(session.pk, "a")
    ws = await _as(alice, session.pk)
    await chunks(session.pk, "b", "c")  # broadcast to the socket before it asked for its history
    await ws.send_json_to({"type": "resume", "after": 1})
    assert [m["seq"] for m in await _until_history_end(ws)] == [None, 2, 3, 3]
    await chunks(session.pk, "d")
    assert (await ws.receive_json_from(timeout=WAIT))["seq"] == 4
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


async def test_the_after_query_replays_without_a_resume_message(alice: User) -> None:
    session = await session_of(alice)
    await chunks(session.pk, "a", "b")
    ws = await _as(alice, session.pk, query="?after=1")
    assert [m["seq"] for m in await _until_history_end(ws)] == [None, 2, 2]
    await ws.disconnect()


async def test_a_teammate_watches_a_team_runs_session(alice: User, bob: User, lab: Team) -> None:
    session = await session_of(alice, lab)
    ws = await _as(bob, session.pk, query="?after=0")
    assert (await _until_history_end(ws))[-1]["type"] == "history.end"
    await ws.disconnect()


async def test_an_api_token_is_accepted(alice: User) -> None:
    session = await session_of(alice)
    _, secret = await database_sync_to_async(make.token)(alice)
    ws = await _connect(session.pk, (b"authorization", f"Token {secret}".encode()), query="?after=0")
    assert (await _until_history_end(ws))[-1]["type"] == "history.end"
    await ws.disconnect()


async def test_an_outsider_is_refused_with_4404(alice: User, charlie: User) -> None:
    session = await session_of(alice)
    assert await _closed_with(await _as(charlie, session.pk)) == 4404


async def test_a_teammate_is_refused_a_personal_runs_session_with_4404(alice: User, bob: User, lab: Team) -> None:
    session = await session_of(alice)
    assert await _closed_with(await _as(bob, session.pk)) == 4404


async def test_a_missing_session_is_refused_with_4404(alice: User) -> None:
    session = await session_of(alice)
    assert await _closed_with(await _as(alice, session.pk + 1000)) == 4404


async def test_anonymous_is_refused_with_4401(alice: User) -> None:
    session = await session_of(alice)
    assert await _closed_with(await _connect(session.pk, ORIGIN)) == 4401


async def test_a_foreign_origin_is_refused_with_4403_even_signed_in(alice: User) -> None:
    session = await session_of(alice)
    cookie = await database_sync_to_async(_cookie)(alice)
    assert await _closed_with(await _connect(session.pk, cookie, (b"origin", b"https://evil.example"))) == 4403
