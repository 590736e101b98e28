"""The run's websocket on the real Redis channel layer: history then live, resume without gaps or repeats,
and refusals with the codes the page shows (4401 anonymous, 4403 foreign origin, 4404 not visible).

Events are recorded through the relay's own service (recording.run_events_record), which broadcasts
after commit, so these tests drive the same path a running run does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from tests.webapp import factories as make
from tests.webapp.runs.ws_testing import WebsocketCommunicator
from webapp.accounts.models import Team
from webapp.routing import websocket_urlpatterns
from webapp.runs import groups, recording
from webapp.runs.models import Run, RunEvent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

APP = AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
ORIGIN = (b"origin", b"http://testserver")
WAIT = 3


def _cookie(user: User) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode())


@pytest_asyncio.fixture(autouse=True)
async def _close_worker_connections() -> Any:
    """The consumers' database thread keeps its connection; close it so the test database can be dropped."""
    yield
    from django.db import connections

    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def make_run() -> Callable[..., Run]:
    def build(user: User, team: Team | None = None) -> Run:
        run = make.run(user, team=team)
        Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING)
        return run

    return build


def _event(seq: int, kind: str = "metrics", *, private: bool = False, **data: Any) -> dict[str, Any]:
    step = seq if kind == "metrics" else None
    return {"seq": seq, "kind": kind, "step": step, "data": data or {"reward/mean": seq / 10}, "private": private}


record = database_sync_to_async(lambda run_id, events: recording.run_events_record(run_id=run_id, events=events))


async def _connect(
    run: Run, *headers: tuple[bytes, bytes], query: str = "", protocols: list[str] | None = None
) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        APP, f"/ws/runs/{run.pk}/{query}", headers=list(headers), subprotocols=protocols
    )
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def _session(user: User, run: Run, **kwargs: Any) -> WebsocketCommunicator:
    cookie = await database_sync_to_async(_cookie)(user)
    return await _connect(run, cookie, ORIGIN, **kwargs)


async def _until_history_end(communicator: WebsocketCommunicator) -> list[dict[str, Any]]:
    messages = []
    while True:
        message = await communicator.receive_json_from(timeout=WAIT)
        messages.append(message)
        if message["type"] == "history.end":
            return messages


def _seqs(messages: list[dict[str, Any]]) -> list[int | None]:
    return [m["seq"] for m in messages]


async def _closed_with(communicator: WebsocketCommunicator) -> int:
    output = await communicator.receive_output(timeout=WAIT)
    assert output["type"] == "websocket.close"
    await communicator.disconnect()  # let the consumer finish before the test's event loop closes
    return int(output["code"])


async def test_history_comes_first_in_order_then_live_events(alice: User, make_run: Callable[..., Run]) -> None:
    run = await database_sync_to_async(make_run)(alice)
    await record(run.pk, [_event(1), _event(2, "log", line="loading"), _event(3)])
    ws = await _session(alice, run)
    await ws.send_json_to({"type": "resume", "after": 0})
    history = await _until_history_end(ws)
    assert history[0]["type"] == "run.status" and history[0]["seq"] is None
    assert history[0]["data"]["status"] == "running"
    assert _seqs(history[1:]) == [1, 2, 3, 3]
    assert [m["type"] for m in history[1:]] == ["run.metrics", "run.log", "run.metrics", "history.end"]
    await record(run.pk, [_event(4), _event(5)])
    live = [await ws.receive_json_from(timeout=WAIT) for _ in range(2)]
    assert _seqs(live) == [4, 5]
    assert live[0]["data"] == {"reward/mean": 0.4} and live[0]["step"] == 4
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


async def test_a_status_change_reaches_the_page_as_the_whole_state_the_run_is_now_in(
    alice: User, make_run: Callable[..., Run]
) -> None:
    """The engine says only "succeeded"; the page gets what the run is now: steps, full progress, no queue
    position, the compute so far. An engine "cancelled" nobody asked for arrives as the database's "failed"."""
    run = await database_sync_to_async(make_run)(alice)
    await database_sync_to_async(Run.objects.filter(pk=run.pk).update)(
        config={**run.config, "train": {**run.config["train"], "steps": 2}}, started_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    ws = await _session(alice, run)
    await ws.send_json_to({"type": "resume", "after": 0})
    await _until_history_end(ws)
    await record(run.pk, [_event(1), _event(2), _event(3, "status", status="succeeded")])
    live = [await ws.receive_json_from(timeout=WAIT) for _ in range(3)]
    assert [m["type"] for m in live] == ["run.metrics", "run.metrics", "run.status"]
    state = live[2]["data"]
    assert state["status"] == "succeeded" and state["steps_done"] == 2 and state["progress"] == 1.0
    assert state["queue_position"] is None and state["eta_s"] is None and state["compute_s"] > 0
    stored = await database_sync_to_async(lambda: RunEvent.objects.get(run=run, seq=3).data)()
    assert stored == {"status": "succeeded"}  # the event row keeps the engine's own words

    other = await database_sync_to_async(make_run)(alice)
    ws2 = await _session(alice, other)
    await ws2.send_json_to({"type": "resume", "after": 0})
    await _until_history_end(ws2)
    await record(other.pk, [_event(1, "status", status="cancelled", reason="stopped")])
    message = await ws2.receive_json_from(timeout=WAIT)
    assert message["data"]["status"] == "failed" and message["data"]["reason"] == "stopped"
    await ws.disconnect()
    await ws2.disconnect()


async def test_a_client_that_resumes_from_a_seq_gets_exactly_what_it_missed(
    alice: User, make_run: Callable[..., Run]
) -> None:
    run = await database_sync_to_async(make_run)(alice)
    await record(run.pk, [_event(s) for s in range(1, 6)])
    ws = await _session(alice, run)
    await ws.send_json_to({"type": "resume", "after": 3})
    history = await _until_history_end(ws)
    assert _seqs(history) == [None, 4, 5, 5]
    await record(run.pk, [_event(6)])
    assert (await ws.receive_json_from(timeout=WAIT))["seq"] == 6
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


async def test_events_between_connect_and_resume_are_sent_once(alice: User, make_run: Callable[..., Run]) -> None:
    run = await database_sync_to_async(make_run)(alice)
    await record(run.pk, [_event(1)])
    ws = await _session(alice, run)
    await record(run.pk, [_event(2), _event(3)])  # broadcast to the socket before it asked for its history
    await ws.send_json_to({"type": "resume", "after": 1})
    history = await _until_history_end(ws)
    assert _seqs(history) == [None, 2, 3, 3]
    await record(run.pk, [_event(4)])
    assert (await ws.receive_json_from(timeout=WAIT))["seq"] == 4
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


async def test_the_after_query_replays_without_a_resume_message(alice: User, make_run: Callable[..., Run]) -> None:
    run = await database_sync_to_async(make_run)(alice)
    await record(run.pk, [_event(1), _event(2)])
    ws = await _session(alice, run, query="?after=1")
    assert _seqs(await _until_history_end(ws)) == [None, 2, 2]
    await ws.disconnect()


async def test_a_live_event_after_a_hole_fills_the_hole_from_the_database(
    alice: User, make_run: Callable[..., Run]
) -> None:
    run = await database_sync_to_async(make_run)(alice)
    ws = await _session(alice, run)
    await ws.send_json_to({"type": "resume", "after": 0})
    assert _seqs(await _until_history_end(ws)) == [None, 0]

    def store_without_broadcast() -> None:  # as if the channel layer had dropped events 1 and 2
        for seq in (1, 2):
            RunEvent.objects.create(run=run, seq=seq, kind="metrics", step=seq, data={"x": seq},
                                    emitted_at=datetime.now(UTC))  # fmt: skip

    await database_sync_to_async(store_without_broadcast)()
    await get_channel_layer().group_send(
        groups.run_group(run.pk), {"type": "run.metrics", "kind": "metrics", "seq": 3, "step": 3, "data": {"x": 3}}
    )
    assert _seqs([await ws.receive_json_from(timeout=WAIT) for _ in range(3)]) == [1, 2, 3]
    await ws.disconnect()


async def test_private_events_reach_the_owner_only(
    alice: User, bob: User, lab: Team, make_run: Callable[..., Run]
) -> None:
    run = await database_sync_to_async(make_run)(alice, lab)
    await record(run.pk, [_event(1), _event(2, "log", private=True, line="Traceback …")])
    owner, teammate = await _session(alice, run), await _session(bob, run)
    for ws in (owner, teammate):
        await ws.send_json_to({"type": "resume", "after": 0})
    assert _seqs(await _until_history_end(owner)) == [None, 1, 2, 2]
    assert _seqs(await _until_history_end(teammate)) == [None, 1, 1]
    await record(run.pk, [_event(3, "log", private=True, line="Traceback again"), _event(4)])
    assert _seqs([await owner.receive_json_from(timeout=WAIT) for _ in range(2)]) == [3, 4]
    assert _seqs([await teammate.receive_json_from(timeout=WAIT)]) == [4]
    assert await teammate.receive_nothing(timeout=0.3)
    await owner.disconnect()
    await teammate.disconnect()


async def test_checkpoints_reach_the_browser_without_their_server_folder(
    alice: User, make_run: Callable[..., Run]
) -> None:
    run = await database_sync_to_async(make_run)(alice)
    ws = await _session(alice, run)
    await ws.send_json_to({"type": "resume", "after": 0})
    await _until_history_end(ws)
    checkpoint = {"seq": 1, "kind": "checkpoint", "step": 2, "data": {"folder": "/srv/media/runs/x/step-2",
                                                                      "size_bytes": 10, "metrics": {}}}  # fmt: skip
    await record(run.pk, [checkpoint])
    message = await ws.receive_json_from(timeout=WAIT)
    assert message["type"] == "run.checkpoint" and message["data"]["step"] == 2
    assert "folder" not in message["data"]
    await ws.disconnect()


async def test_an_outsider_is_refused_with_4404(alice: User, charlie: User, make_run: Callable[..., Run]) -> None:
    run = await database_sync_to_async(make_run)(alice)
    assert await _closed_with(await _session(charlie, run)) == 4404


async def test_a_missing_run_is_refused_with_4404(alice: User, make_run: Callable[..., Run]) -> None:
    run = await database_sync_to_async(make_run)(alice)
    run.pk = run.pk + 1000
    assert await _closed_with(await _session(alice, run)) == 4404


async def test_anonymous_is_refused_with_4401(alice: User, make_run: Callable[..., Run]) -> None:
    run = await database_sync_to_async(make_run)(alice)
    assert await _closed_with(await _connect(run, ORIGIN)) == 4401


async def test_a_foreign_origin_is_refused_with_4403_even_signed_in(alice: User, make_run: Callable[..., Run]) -> None:
    run = await database_sync_to_async(make_run)(alice)
    cookie = await database_sync_to_async(_cookie)(alice)
    assert await _closed_with(await _connect(run, cookie, (b"origin", b"https://evil.example"))) == 4403


async def test_a_session_without_an_origin_is_refused_with_4403(alice: User, make_run: Callable[..., Run]) -> None:
    run = await database_sync_to_async(make_run)(alice)
    cookie = await database_sync_to_async(_cookie)(alice)
    assert await _closed_with(await _connect(run, cookie)) == 4403


async def test_an_api_token_in_the_authorization_header_is_accepted(alice: User, make_run: Callable[..., Run]) -> None:
    run = await database_sync_to_async(make_run)(alice)
    _, secret = await database_sync_to_async(make.token)(alice)
    ws = await _connect(run, (b"authorization", f"Token {secret}".encode()), query="?after=0")
    assert (await _until_history_end(ws))[-1]["type"] == "history.end"
    await ws.disconnect()


async def test_an_api_token_as_a_subprotocol_is_accepted_and_arpo_v1_is_chosen(
    alice: User, make_run: Callable[..., Run]
) -> None:
    run = await database_sync_to_async(make_run)(alice)
    _, secret = await database_sync_to_async(make.token)(alice)
    communicator = WebsocketCommunicator(
        APP, f"/ws/runs/{run.pk}/?after=0", subprotocols=["arpo.v1", f"arpo.token.{secret}"]
    )
    connected, protocol = await communicator.connect()
    assert connected and protocol == "arpo.v1"
    assert (await _until_history_end(communicator))[-1]["type"] == "history.end"
    await communicator.disconnect()


async def test_a_bad_token_is_refused_with_4401(alice: User, make_run: Callable[..., Run]) -> None:
    run = await database_sync_to_async(make_run)(alice)
    assert await _closed_with(await _connect(run, (b"authorization", b"Token arpo_not-a-token"))) == 4401


async def test_a_token_of_an_outsider_is_refused_with_4404(
    alice: User, charlie: User, make_run: Callable[..., Run]
) -> None:
    run = await database_sync_to_async(make_run)(alice)
    _, secret = await database_sync_to_async(make.token)(charlie)
    assert await _closed_with(await _connect(run, (b"authorization", f"Token {secret}".encode()))) == 4404


async def _list_socket(user: User) -> WebsocketCommunicator:
    cookie = await database_sync_to_async(_cookie)(user)
    communicator = WebsocketCommunicator(APP, "/ws/runs/", headers=[cookie, ORIGIN])
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def test_the_run_list_socket_gets_rows_of_team_runs_and_never_an_outsider(
    alice: User, bob: User, charlie: User, lab: Team, make_run: Callable[..., Run]
) -> None:
    run = await database_sync_to_async(make_run)(alice, lab)
    sockets = {name: await _list_socket(user) for name, user in (("alice", alice), ("bob", bob), ("charlie", charlie))}
    await record(run.pk, [_event(1), _event(2, "log", line="not a row change")])
    for name in ("alice", "bob"):
        row = await sockets[name].receive_json_from(timeout=WAIT)
        assert row["type"] == "runs.row" and row["run"] == run.pk
        assert row["steps_done"] == 1 and row["metrics"] == {"reward/mean": 0.1} and row["spark"] == 0.1
    assert await sockets["charlie"].receive_nothing(timeout=0.5)
    for ws in sockets.values():
        await ws.disconnect()


async def test_the_run_list_socket_of_a_personal_run_reaches_its_owner_only(
    alice: User, bob: User, lab: Team, make_run: Callable[..., Run]
) -> None:
    run = await database_sync_to_async(make_run)(alice)
    owner, teammate = await _list_socket(alice), await _list_socket(bob)
    await record(run.pk, [_event(1)])
    assert (await owner.receive_json_from(timeout=WAIT))["run"] == run.pk
    assert await teammate.receive_nothing(timeout=0.5)
    await owner.disconnect()
    await teammate.disconnect()


async def test_the_run_list_socket_refuses_anonymous_with_4401() -> None:
    communicator = WebsocketCommunicator(APP, "/ws/runs/", headers=[ORIGIN])
    await communicator.connect()
    assert await _closed_with(communicator) == 4401
