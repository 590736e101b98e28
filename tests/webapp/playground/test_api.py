"""The playground's REST API and services: asking a checkpoint, the scoped selector (404 for outsiders),
one running session per person, bad input, and the numbered events. No worker here: the answering
itself is tested through a real one (tests/worker/test_playground.py)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import TestCase
from django.utils import timezone

from webapp.accounts.models import Team
from webapp.playground import services
from webapp.playground.models import PlaygroundEvent, PlaygroundSession
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db

QUESTION = {"question": "What is the remainder when the population of Tenholt is divided by 97?"}


def ask(api: Any, run: Run, ref: str = "latest", body: Any = None) -> Any:
    return api.post(f"/api/v1/runs/{run.pk}/checkpoints/{ref}/try/", QUESTION if body is None else body, format="json")


def finish(session_id: int) -> None:
    for side in services.SIDES:
        services.side_begin(session_id=session_id, side=side)
        services.side_end(session_id=session_id, side=side, ok=True)


def test_asking_a_checkpoint_queues_both_answers_after_commit(
    alice: User, api_for: Callable[..., Any], trained: Callable[..., Run]
) -> None:
    run = trained(alice)
    with TestCase.captureOnCommitCallbacks(execute=False) as queued:
        response = ask(api_for(alice), run)
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["sides"] == {"trained": "queued", "base": "queued"}
    assert body["step"] == 2 and body["run"] == run.pk and body["question"] == QUESTION["question"]
    assert body["answers"] == {"trained": None, "base": None} and body["asked_by"] == "alice"
    assert body["ws_url"] == f"/ws/playground/{body['id']}/"
    assert body["events_url"] == f"/api/v1/playground/{body['id']}/events/"
    assert len(queued) == 1  # one callback that sends the two tasks, only once the session is committed
    session = PlaygroundSession.objects.get(pk=body["id"])
    assert session.owner_user == alice and session.created_by == alice and session.checkpoint.step == 2


def test_a_step_number_names_that_step(alice: User, api_for: Callable[..., Any], trained: Callable[..., Run]) -> None:
    response = ask(api_for(alice), trained(alice), ref="1")
    assert response.status_code == 202 and response.json()["step"] == 1


def test_an_outsider_gets_404_for_the_run_the_session_and_its_events(
    alice: User, charlie: User, api_for: Callable[..., Any], trained: Callable[..., Run]
) -> None:
    run = trained(alice)
    session_id = ask(api_for(alice), run).json()["id"]
    outsider = api_for(charlie)
    for response in (
        ask(outsider, run),
        outsider.get(f"/api/v1/playground/{session_id}/"),
        outsider.get(f"/api/v1/playground/{session_id}/events/"),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == "not_found" and run.name not in response.content.decode()
    assert PlaygroundSession.objects.count() == 1


def test_anonymous_gets_401(alice: User, api_for: Callable[..., Any], trained: Callable[..., Run]) -> None:
    assert ask(api_for(None), trained(alice)).status_code == 401


def test_a_teammate_may_ask_a_team_runs_checkpoint_and_watch_alices_session(
    alice: User, bob: User, lab: Team, api_for: Callable[..., Any], trained: Callable[..., Run]
) -> None:
    run = trained(alice, team=lab)
    session_id = ask(api_for(alice), run).json()["id"]
    assert api_for(bob).get(f"/api/v1/playground/{session_id}/").status_code == 200
    response = ask(api_for(bob), run)
    assert response.status_code == 202 and response.json()["asked_by"] == "bob"
    assert PlaygroundSession.objects.get(pk=response.json()["id"]).owner_team == lab


def test_a_second_question_while_one_is_being_answered_is_refused_with_409_even_on_another_run(
    alice: User, api_for: Callable[..., Any], trained: Callable[..., Run]
) -> None:
    api = api_for(alice)
    first = ask(api, trained(alice)).json()
    response = ask(api, trained(alice))
    assert response.status_code == 409
    assert response.json()["code"] == "session_running"
    assert (
        "being answered already" in response.json()["message"]
        and f"session {first['id']}" in response.json()["message"]
    )
    finish(first["id"])
    assert PlaygroundSession.objects.get(pk=first["id"]).status == "done"
    assert ask(api, trained(alice)).status_code == 202


def test_one_persons_running_session_does_not_block_another_person(
    alice: User, bob: User, lab: Team, api_for: Callable[..., Any], trained: Callable[..., Run]
) -> None:
    run = trained(alice, team=lab)
    assert ask(api_for(alice), run).status_code == 202
    assert ask(api_for(bob), run).status_code == 202


def test_the_database_refuses_a_second_active_session_of_one_person(
    alice: User, api_for: Callable[..., Any], trained: Callable[..., Run]
) -> None:
    from django.db import IntegrityError, transaction

    first = PlaygroundSession.objects.get(pk=ask(api_for(alice), trained(alice)).json()["id"])
    with pytest.raises(IntegrityError), transaction.atomic():
        PlaygroundSession.objects.create(owner_user=alice, created_by=alice, run=first.run, checkpoint=first.checkpoint,
                                         question="again")  # fmt: skip


def test_a_session_whose_worker_is_gone_expires_and_frees_its_person(
    alice: User, api_for: Callable[..., Any], trained: Callable[..., Run]
) -> None:
    api = api_for(alice)
    old_id = ask(api, trained(alice)).json()["id"]
    services.side_begin(session_id=old_id, side="trained")
    long_ago = timezone.now() - services.stale_after() - timedelta(minutes=1)
    PlaygroundSession.objects.filter(pk=old_id).update(created_at=long_ago)
    assert ask(api, trained(alice)).status_code == 202
    old = PlaygroundSession.objects.get(pk=old_id)
    assert old.status == "failed" and old.sides == {"trained": "failed", "base": "failed"}
    lost = PlaygroundEvent.objects.filter(session=old, kind="error")
    assert sorted(e.side for e in lost) == ["base", "trained"] and "ask again" in lost[0].data["message"]


@pytest.mark.parametrize(
    ("body", "code", "says"),
    [
        ({"question": ""}, "empty_question", "Type a question"),
        ({"question": "   \n "}, "empty_question", "Type a question"),
        ({"question": "x" * (services.QUESTION_MAX_CHARS + 1)}, "question_too_long", "up to 2000"),
        ({}, "invalid", "question"),
        ({"question": {"nested": 1}}, "invalid", "question"),
        ({"question": "a\x00b"}, "invalid", "Null characters"),
    ],
)
def test_bad_input_is_a_400_that_says_what_to_fix(
    alice: User, api_for: Callable[..., Any], trained: Callable[..., Run], body: Any, code: str, says: str
) -> None:
    response = ask(api_for(alice), trained(alice), body=body)
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == code and says in response.json()["message"] + str(response.json().get("fields"))
    assert PlaygroundSession.objects.count() == 0


def test_a_question_at_the_length_cap_is_accepted(
    alice: User, api_for: Callable[..., Any], trained: Callable[..., Run]
) -> None:
    response = ask(api_for(alice), trained(alice), body={"question": "y" * services.QUESTION_MAX_CHARS})
    assert response.status_code == 202


def test_a_missing_or_pruned_checkpoint_is_a_404_with_the_reason(
    alice: User, api_for: Callable[..., Any], trained: Callable[..., Run]
) -> None:
    api = api_for(alice)
    run = trained(alice, steps=(1, 2))
    assert "no checkpoint at step 7" in ask(api, run, ref="7").json()["message"]
    assert "no best checkpoint" in ask(api, run, ref="best").json()["message"]
    shutil.rmtree(run.checkpoint_dir() / f"run-{run.pk}" / "step-1")
    response = ask(api, run, ref="1")
    assert response.status_code == 404 and "pruned" in response.json()["message"]
    assert ask(api, run, ref="..%2F").status_code == 404


def test_events_come_oldest_first_after_a_seq_and_up_to_a_limit(
    alice: User, api_for: Callable[..., Any], trained: Callable[..., Run]
) -> None:
    api = api_for(alice)
    session_id = ask(api, trained(alice)).json()["id"]
    for i in range(5):
        services.event_record(session_id=session_id, side="trained" if i % 2 else "base", kind="model",
                              data={"text": f"chunk {i}"})  # fmt: skip
    events = api.get(f"/api/v1/playground/{session_id}/events/").json()
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert events[1] == {**events[1], "side": "trained", "kind": "model", "data": {"text": "chunk 1"}}
    assert [e["seq"] for e in api.get(f"/api/v1/playground/{session_id}/events/?after=2&limit=2").json()] == [3, 4]
    bad = api.get(f"/api/v1/playground/{session_id}/events/?after=two")
    assert bad.status_code == 400 and bad.json()["fields"] == {"after": ["A whole number."]}


def test_the_session_shows_each_sides_final_answer_or_error(
    alice: User, api_for: Callable[..., Any], trained: Callable[..., Run]
) -> None:
    api = api_for(alice)
    session_id = ask(api, trained(alice)).json()["id"]
    services.event_record(session_id=session_id, side="trained", kind="final",
                          data={"answer": "87", "finish_reason": "eos", "tool_calls": 1})  # fmt: skip
    services.event_record(session_id=session_id, side="base", kind="error",
                          data={"code": "time_cap", "message": "Stopped"})  # fmt: skip
    answers = api.get(f"/api/v1/playground/{session_id}/").json()["answers"]
    assert answers["trained"] == {"kind": "final", "answer": "87", "finish_reason": "eos", "tool_calls": 1}
    assert answers["base"] == {"kind": "error", "code": "time_cap", "message": "Stopped"}


def test_events_are_numbered_per_session_and_sides_end_the_session(alice: User, trained: Callable[..., Run]) -> None:
    session = services.session_start(user=alice, run=trained(alice), ref="latest", question="Hi?")
    assert [services.event_record(session_id=session.pk, side="base", kind="model", data={}) for _ in range(3)] == [
        1,
        2,
        3,
    ]
    assert services.side_begin(session_id=session.pk, side="base")
    session.refresh_from_db()
    assert session.status == "running" and session.started_at is not None
    services.side_end(session_id=session.pk, side="base", ok=False)
    session.refresh_from_db()
    assert session.status == "running"  # the trained side is still to come
    assert not services.side_begin(session_id=session.pk, side="base")  # an ended side is not answered twice
    services.side_end(session_id=session.pk, side="trained", ok=False)
    session.refresh_from_db()
    assert session.status == "failed" and session.finished_at is not None and session.last_seq == 3


def test_the_openapi_schema_documents_the_playground(api_for: Callable[..., Any], alice: User) -> None:
    schema = api_for(alice).get("/api/schema/?format=json").json()
    paths = schema["paths"]
    start = paths["/api/v1/runs/{id}/checkpoints/{ref}/try/"]["post"]
    assert set(start["responses"]) >= {"202", "400", "404", "409"}
    body = start["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "question" in schema["components"]["schemas"][body]["properties"]
    assert "get" in paths["/api/v1/playground/{session_id}/"]
    assert {p["name"] for p in paths["/api/v1/playground/{session_id}/events/"]["get"]["parameters"]} >= {
        "after",
        "limit",
    }
