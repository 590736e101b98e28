""""Try it" through a real Celery worker process: python in the sandbox, calculator, http with a secret."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from rest_framework.test import APIClient

from tests.tools.http_server import local_server
from tests.worker.fixtures import CeleryWorker
from webapp.tools import services
from webapp.tools.models import Tool, ToolTrial

SECRET = "sk-live-0123456789abcdef"
ApiFor = Callable[[User | None], APIClient]


def try_and_wait(api: APIClient, tool: Tool, arguments: dict[str, Any], wait_s: float = 60) -> dict[str, Any]:
    response = api.post(f"/api/v1/tools/{tool.pk}/try/", {"arguments": arguments}, format="json")
    assert response.status_code == 202, response.content
    trial = response.json()
    assert trial["status"] == "queued"
    deadline = time.monotonic() + wait_s
    while trial["status"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        trial = api.get(f"/api/v1/tools/{tool.pk}/trials/{trial['id']}/").json()
    return trial


def test_python_tool_prints_on_the_worker(alice: User, api_for: ApiFor, celery_worker: CeleryWorker) -> None:
    tool = services.tool_create(user=alice, name="python", kind="python", timeout_s=5.0)
    trial = try_and_wait(api_for(alice), tool, {"code": "print(2 + 2)"})
    assert (trial["status"], trial["error"], trial["output"].strip()) == ("done", "", "4")
    assert trial["latency_ms"] > 0


def test_python_timeout_is_an_error_not_a_server_error(alice: User, api_for: ApiFor, celery_worker: CeleryWorker) -> None:
    tool = services.tool_create(user=alice, name="python", kind="python", timeout_s=1.0)
    trial = try_and_wait(api_for(alice), tool, {"code": "while True: pass"})
    assert trial["status"] == "done"
    assert trial["error"] == "timeout"


def test_calculator_on_the_worker(alice: User, api_for: ApiFor, celery_worker: CeleryWorker) -> None:
    tool = services.tool_create(user=alice, name="calc", kind="calculator")
    trial = try_and_wait(api_for(alice), tool, {"expression": "(3 + 4) * 2 ** 10"})
    assert (trial["status"], trial["output"]) == ("done", "7168")


def test_http_tool_sends_the_secret_header_from_the_worker(alice: User, api_for: ApiFor, celery_worker: CeleryWorker) -> None:
    with local_server() as server:
        tool = services.tool_create(user=alice, name="web", kind="http", url=f"{server.base}/echo-headers",
                                    secret_headers={"X-Api-Key": SECRET})  # fmt: skip
        trial = try_and_wait(api_for(alice), tool, {"input": "hello"})
    assert trial["status"] == "done" and trial["error"] == ""
    assert server.received[0].headers["X-Api-Key"] == SECRET
    assert server.received[0].body == {"input": "hello"}
    assert SECRET not in str(trial) and "[secret]" in trial["output"]
    assert SECRET not in ToolTrial.objects.get().output
    assert SECRET not in celery_worker.log()



def test_page_try_it_shows_the_result_when_the_worker_is_done(alice: User, celery_worker: CeleryWorker) -> None:
    from django.test import Client

    from tests.webapp.conftest import PASSWORD

    tool = services.tool_create(user=alice, name="calc", kind="calculator")
    page = Client()
    page.login(username="alice", password=PASSWORD)
    response = page.post(f"/tools/{tool.pk}/try/", {"arguments": '{"expression": "6 * 7"}'})
    assert response.status_code == 302
    trial = ToolTrial.objects.get()
    deadline = time.monotonic() + 60
    while not ToolTrial.objects.get().finished and time.monotonic() < deadline:
        time.sleep(0.2)
    html = page.get(response["Location"]).content.decode()
    assert f'data-api="/api/v1/tools/{tool.pk}/trials/{trial.pk}/"' in html
    assert '<pre class="output" data-field="output">42</pre>' in html


def test_search_tool_reads_its_corpus_on_the_worker(alice: User, api_for: ApiFor, celery_worker: CeleryWorker) -> None:
    from webapp.datasets.models import Dataset

    corpus = Dataset.objects.create(owner_user=alice, kind="corpus", name="capitals", original_name="c.jsonl",
                                    format="jsonl", sha256="0" * 64, rows=2)  # fmt: skip
    corpus.storage_dir().mkdir(parents=True)
    (corpus.storage_dir() / "corpus.jsonl").write_text(
        '{"title": "Paris", "text": "Paris is the capital of France."}\n'
        '{"title": "Berlin", "text": "Berlin is the capital of Germany."}\n'
    )
    tool = services.tool_create(user=alice, name="search", kind="search", corpus=corpus.pk, top_k=1)
    trial = try_and_wait(api_for(alice), tool, {"query": "capital of France"})
    assert (trial["status"], trial["error"]) == ("done", "")
    assert trial["output"].startswith("1. Paris: Paris is the capital of France.")
