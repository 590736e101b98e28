"""The playground through a real Celery worker on the `short` queue: a question put to a checkpoint of the
tiny model (saved by the engine's CheckpointManager with its agent.json) and to the run's base model. Both
answers stream into the database and the session's channel-layer group, numbered without gaps; the
wall-clock cap stops an answer with a readable error."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from tests.e2e.run_stack import GroupListener
from tests.webapp.runs.conftest import make_prompts
from tests.worker.fixtures import CeleryWorker, _stop, start_worker
from webapp.accounts.models import ApiToken
from webapp.playground.models import PlaygroundEvent, PlaygroundSession
from webapp.runs import groups, recording
from webapp.runs.models import BaseModel, Run
from webapp.runs.services import run_create
from webapp.tools.services import tool_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return Path(settings.MEDIA_ROOT)


@pytest.fixture
def alice(transactional_db: None) -> User:
    return User.objects.create_user("alice", "alice@example.com", "correct-horse-battery-9")


@pytest.fixture
def api(alice: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.objects.create(user=alice, name='t', expiry=None)[1]}")
    return client


def save_checkpoint(run: Run, model_dir: Path, step: int = 1) -> Path:
    """The step folder as a run saves it: weights, tokenizer, run.json and agent.json (CheckpointManager),
    recorded through the relay's service."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from arpo_engine.agent_spec import build_agent_spec
    from arpo_engine.checkpoint import CheckpointManager
    from arpo_engine.config import RunConfig
    from arpo_engine.rollout.formats import get_format
    from arpo_engine.tools.registry import build_tools

    config = RunConfig.from_dict(run.config)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tools = build_tools(config.tools)
    agent = build_agent_spec(config, tools, get_format(config.rollout.call_format, tokenizer))
    manager = CheckpointManager(run.checkpoint_dir(), str(run.pk))
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    folder = manager.save(step, model, tokenizer, run_config=run.config, metrics={}, agent=agent)
    event = {"seq": 1, "kind": "checkpoint", "step": step, "data": {"folder": str(folder), "metrics": {}}}
    recording.run_events_record(run_id=run.pk, events=[event])
    Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED)
    return folder


def make_tiny_run(alice: User, tiny_model_dir: Path) -> Run:
    """alice's finished run on the tiny model with a python tool and its step 1 saved (also for the CLI's test)."""
    BaseModel.objects.update_or_create(
        slug="tiny-test", defaults={"display_name": "Tiny (test)", "path": str(tiny_model_dir), "max_model_len": 8192}
    )
    python = tool_create(user=alice, name="python", kind="python")
    overrides = {"rollout.sampler": "transformers", "rollout.max_response_tokens": 24, "rollout.max_tool_calls": 1}
    run = run_create(user=alice, name="tiny", preset="arpo_paper", base_model="tiny-test",
                     dataset=make_prompts(alice, rows=8), tools=[python.pk], overrides=overrides)  # fmt: skip
    assert run.launchable, run.errors
    save_checkpoint(run, tiny_model_dir)
    return run


@pytest.fixture
def tiny_run(alice: User, tiny_model_dir: Path) -> Run:
    return make_tiny_run(alice, tiny_model_dir)


@pytest.fixture
def worker_for(settings: Any, tmp_path: Path) -> Iterator[Callable[..., CeleryWorker]]:
    """Start the short-queue worker after the question is queued (purge=False), so a listener can join first."""
    started: list[CeleryWorker] = []

    def start(**env: str) -> CeleryWorker:
        worker = start_worker("short", settings, tmp_path / "worker.log", env, purge=False)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        _stop(worker.process)


def _wait_done(api: APIClient, session_id: int, worker: CeleryWorker, timeout_s: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body = api.get(f"/api/v1/playground/{session_id}/").json()
        if body["status"] in ("done", "failed"):
            return dict(body)
        assert time.monotonic() < deadline, f"not answered in {timeout_s} s:\n{worker.log()[-3000:]}"
        assert worker.process.poll() is None, f"the worker exited:\n{worker.log()[-3000:]}"
        time.sleep(0.3)


def test_both_answers_stream_from_the_worker_into_the_database_and_the_sessions_group(
    api: APIClient, tiny_run: Run, worker_for: Callable[..., CeleryWorker]
) -> None:
    from tests.worker.fixtures import _purge

    _purge("short")
    response = api.post(f"/api/v1/runs/{tiny_run.pk}/checkpoints/latest/try/", {"question": "What is 6 * 7?"},
                        format="json")  # fmt: skip
    assert response.status_code == 202, response.json()
    session_id = response.json()["id"]
    listener = GroupListener(0)
    listener.group = groups.playground_group(session_id)
    with listener:
        worker = worker_for()
        body = _wait_done(api, session_id, worker)
        time.sleep(0.5)  # the last broadcasts follow the commits
    assert body["status"] == "done", body
    assert body["sides"] == {"trained": "done", "base": "done"}
    events = list(PlaygroundEvent.objects.filter(session_id=session_id).order_by("seq"))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    for side in ("trained", "base"):
        mine = [e for e in events if e.side == side]
        assert [e.kind for e in mine[:2]] == ["status", "status"], [e.kind for e in mine]
        assert mine[0].data["state"] == "loading" and mine[1].data["state"] == "answering"
        assert mine[-1].kind == "final" and 0 < mine[-1].data["tokens"] <= 24
        assert any(e.kind == "model" for e in mine)
        text = "".join(e.data["text"] for e in mine if e.kind == "model")
        assert text and mine[-1].data["text"].startswith(text[:5])
    assert events[0].data["model"] in ("step 1 of tiny", "Tiny (test)")
    assert body["answers"]["trained"]["kind"] == "final" and body["answers"]["base"]["kind"] == "final"
    sent = [m for m in listener.messages if m.get("seq") is not None]
    assert sorted(m["seq"] for m in sent) == [e.seq for e in events]  # every stored event reached the group
    assert {m["type"] for m in listener.messages} >= {"playground.status", "playground.model", "playground.final",
                                                      "playground.session"}  # fmt: skip
    assert PlaygroundSession.objects.get(pk=session_id).finished_at is not None


def test_the_wall_clock_cap_stops_an_answer_with_a_readable_error(
    api: APIClient, tiny_run: Run, worker_for: Callable[..., CeleryWorker]
) -> None:
    from tests.worker.fixtures import _purge

    _purge("short")
    Run.objects.filter(pk=tiny_run.pk).update(
        config={**tiny_run.config, "rollout": {**tiny_run.config["rollout"], "max_response_tokens": 4000}}
    )
    response = api.post(f"/api/v1/runs/{tiny_run.pk}/checkpoints/latest/try/", {"question": "Tell me a story."},
                        format="json")  # fmt: skip
    assert response.status_code == 202
    session_id = response.json()["id"]
    worker = worker_for(ARPO_PLAYGROUND_WALL_S="1")
    body = _wait_done(api, session_id, worker)
    assert body["status"] == "failed" and body["sides"] == {"trained": "failed", "base": "failed"}
    for side in ("trained", "base"):
        error = body["answers"][side]
        assert error["kind"] == "error" and error["code"] == "time_cap"
        assert "Stopped after 1 s" in error["message"]
    # what the model wrote before the cap stays
    assert PlaygroundEvent.objects.filter(session_id=session_id, kind="model").exists()
