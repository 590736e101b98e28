"""Shared parts of the run-execution tests on the real stack (tests/e2e/test_run_execute*.py): the tiny
base model, alice's API client, a run factory with a very small config, waiting, and a channel-layer listener.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from tests.webapp.runs.conftest import make_prompts
from tests.worker.fixtures import CeleryWorker
from webapp.accounts.models import ApiToken
from webapp.runs import groups
from webapp.runs.models import BaseModel, Run
from webapp.tools.models import Tool
from webapp.tools.services import tool_create

TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return Path(settings.MEDIA_ROOT)


@pytest.fixture
def tiny_base(transactional_db: None, tiny_model_dir: Path) -> BaseModel:
    model, _ = BaseModel.objects.update_or_create(
        slug="tiny-test", defaults={"display_name": "Tiny (test)", "path": str(tiny_model_dir), "max_model_len": 8192}
    )
    return model


@pytest.fixture
def api(alice: User) -> APIClient:
    client = APIClient()
    _, token = ApiToken.objects.create(user=alice, name="test", expiry=None)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def python_tool(alice: User) -> Tool:
    return tool_create(user=alice, name="python", kind="python")


@pytest.fixture
def create_run(api: APIClient, alice: User, tiny_base: BaseModel, python_tool: Tool) -> Callable[..., int]:
    prompts = make_prompts(alice, rows=8)

    def create(name: str, steps: int) -> int:
        overrides = {
            "rollout.sampler": "transformers",
            "rollout.group_size": 2,
            "rollout.initial_samples": 1,
            "rollout.max_response_tokens": 24,
            "rollout.max_tool_calls": 1,
            "optim.train_batch_prompts": 2,
            "optim.mini_batch_prompts": 2,
            "optim.lr": 1e-4,
            "train.steps": steps,
            "train.eval_every": 2,
            "train.eval_prompts": 2,
            "train.eval_at_start": False,
            "checkpoint.every_steps": 1,
            "checkpoint.keep_last": 2,
        }
        body = {"name": name, "base_model": tiny_base.slug, "dataset": prompts.pk, "tools": [python_tool.pk],
                "overrides": overrides}  # fmt: skip
        response = api.post("/api/v1/runs/", body, format="json")
        assert response.status_code == 201, response.json()
        assert response.json()["launchable"], response.json()["errors"]
        return int(response.json()["id"])

    return create


def wait_for(check: Callable[[], Any], timeout_s: float, worker: CeleryWorker, what: str) -> Any:
    """Poll `check` until it is true; fail early with the worker's log when the worker exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if worker.process.poll() is not None:
            pytest.fail(f"the worker exited while waiting for {what}:\n{worker.log()[-4000:]}")
        time.sleep(0.3)
    pytest.fail(f"no {what} after {timeout_s} s; worker log:\n{worker.log()[-4000:]}")


def status_of(run_id: int) -> str:
    return Run.objects.values_list("status", flat=True).get(pk=run_id)


class GroupListener:
    """Collects what the channel layer delivers to a run's group, in a thread of its own."""

    def __init__(self, run_id: int) -> None:
        self.messages: list[dict[str, Any]] = []
        self.group = groups.run_group(run_id)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)

    async def _listen(self) -> None:
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(self.group, channel)
        self._ready.set()
        # One receive at a time, never cancelled while the listener runs: a receive cancelled by a
        # timeout can have taken a message off Redis already, and that message is then lost (an event
        # missing from `messages` although it was delivered).
        pending = asyncio.ensure_future(layer.receive(channel))
        while not self._stop.is_set():
            done, _ = await asyncio.wait({pending}, timeout=0.5)
            if not done:
                continue
            message = pending.result()
            message["received_at"] = time.time()
            self.messages.append(message)
            pending = asyncio.ensure_future(layer.receive(channel))
        pending.cancel()
        await layer.group_discard(self.group, channel)

    def __enter__(self) -> GroupListener:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def listener_for() -> Iterator[Callable[[int], GroupListener]]:
    started: list[GroupListener] = []

    def make(run_id: int) -> GroupListener:
        listener = GroupListener(run_id).__enter__()
        started.append(listener)
        return listener

    yield make
    for listener in started:
        listener.__exit__()
