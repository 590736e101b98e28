"""The playground in Debian's chromium against uvicorn (HTTP + websockets, Redis channel layer) and a real
Celery worker on the `short` queue: a finished run's page, its checkpoint downloaded (a ZIP archive with
agent.json), then a question asked from the keyboard; the trained agent's answer, tool calls and results
set apart, and the base model's stream in side by side. Screenshot: docs/screenshots/playground.png.

The run's checkpoint is the demo SFT model (`make model-sft`: SmolLM2-135M-Instruct taught to call the
demo world's search and python tools), saved as the run's step 3 by the engine's CheckpointManager with its
agent.json; the run's base model is the bundled SmolLM2-135M-Instruct. Training a run is proven in
test_run_execute.py; this test starts from its result.
"""

from __future__ import annotations

import json
import re
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import Browser, Page, expect

from tests.e2e.asgi_server import asgi_server  # noqa: F401  (fixture)
from tests.webapp.runs.conftest import demo_upload, make_prompts, stored
from tests.worker.fixtures import CeleryWorker, _stop, start_worker
from webapp.core.management.commands.seed_demo import demo_config, run_overrides
from webapp.playground.models import PlaygroundSession
from webapp.runs import recording
from webapp.runs.models import Run
from webapp.runs.services import run_create
from webapp.tools.services import tool_create

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
STEP = 3
QUESTION = "How old will Senna Heindkiav be in the year 2054?"  # the demo's first eval question (answer 157)
ANSWER_WAIT_MS = 420_000  # two 135M models answering one after the other on a busy 2-core CPU


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return Path(settings.MEDIA_ROOT)


def save_sft_checkpoint(run: Run) -> Path:
    """The demo SFT model as the run's checkpoint of step STEP, written as a run writes one."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from arpo_engine.agent_spec import build_agent_spec
    from arpo_engine.checkpoint import CheckpointManager
    from arpo_engine.config import RunConfig
    from arpo_engine.rollout.formats import get_format
    from arpo_engine.tools.registry import build_tools

    sft = Path(settings.VAR_DIR) / "models" / "smollm2-135m-demo-sft"
    if not (sft / "config.json").is_file():
        pytest.fail("The demo SFT model is missing: run `make model-sft` (`make test` does).")
    config = RunConfig.from_dict(run.config)
    tokenizer = AutoTokenizer.from_pretrained(sft)
    agent = build_agent_spec(config, build_tools(config.tools), get_format(config.rollout.call_format, tokenizer))
    manager = CheckpointManager(run.checkpoint_dir(), str(run.pk))
    metrics = {"accuracy": 0.5, "eval/accuracy": 0.47}
    return manager.save(STEP, AutoModelForCausalLM.from_pretrained(sft), tokenizer, run_config=run.config,
                        metrics=metrics, agent=agent)  # fmt: skip


def in_a_thread(work: Callable[[], Any]) -> None:
    """Run `work` (it broadcasts after commit with async_to_sync) outside this thread, where Playwright's
    event loop runs."""

    def run() -> None:
        from django.db import connection

        try:
            work()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)


@pytest.fixture
def finished_run(alice: User) -> Run:
    corpus = stored("corpus", alice, demo_upload("corpus.jsonl"))
    tools = [
        tool_create(user=alice, name="search", kind="search", corpus=corpus.pk, top_k=2),
        tool_create(user=alice, name="python", kind="python", timeout_s=10),
    ]
    overrides = {**run_overrides(demo_config()), "rollout.sampler": "transformers", "rollout.max_response_tokens": 512,
                 "train.steps": STEP}  # fmt: skip
    run = run_create(user=alice, name="ARPO on the demo world", preset="arpo_paper", base_model="smollm2-135m",
                     dataset=make_prompts(alice), tools=[t.pk for t in tools], overrides=overrides)  # fmt: skip
    assert run.launchable, run.errors
    folder = save_sft_checkpoint(run)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.QUEUED)
    at = time.time() - 60
    events: list[dict[str, Any]] = [{"kind": "status", "data": {"status": "running"}}]
    for step in range(1, STEP + 1):
        events.append({"kind": "metrics", "step": step, "data": {"reward/mean": 0.1 * step, "accuracy": 0.15 * step,
                                                                 "tools/calls_per_traj": 1.5 + 0.2 * step}})  # fmt: skip
    events.append({"kind": "checkpoint", "step": STEP, "data": {"folder": str(folder), "size_bytes": 538_000_000,
                                                                "metrics": {"accuracy": 0.5}}})  # fmt: skip
    events.append({"kind": "status", "data": {"status": "succeeded", "steps_done": STEP}})
    for seq, event in enumerate(events, start=1):
        event.update(seq=seq, at=at + seq)
    in_a_thread(lambda: recording.run_events_record(run_id=run.pk, events=events))
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    return run


@pytest.fixture
def short_worker(transactional_db: None, settings: Any, tmp_path: Path, media_root: Path) -> Iterator[CeleryWorker]:
    # A generous cap: this machine is shared, and one answer here takes about a minute.
    worker = start_worker("short", settings, tmp_path / "worker.log", {"ARPO_PLAYGROUND_WALL_S": "300"})
    try:
        yield worker
    finally:
        _stop(worker.process)


@pytest.fixture
def signed_in(browser: Browser, alice: User, asgi_server: str) -> Page:  # noqa: F811
    client = Client()
    client.force_login(alice)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    context = browser.new_context(base_url=asgi_server, viewport={"width": 1440, "height": 900}, accept_downloads=True)
    context.set_default_timeout(20_000)
    context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": asgi_server}])
    return context.new_page()


def test_a_finished_runs_checkpoint_downloads_and_answers_next_to_its_base_model(
    signed_in: Page,
    finished_run: Run,
    short_worker: CeleryWorker,
    screenshot: Callable[[Page, str], Path],
    tmp_path: Path,
) -> None:
    page, run = signed_in, finished_run
    page.goto(f"/runs/{run.pk}/")
    expect(page.locator("[data-run-checkpoints]")).to_contain_text(f"Step {STEP}")

    with page.expect_download(timeout=180_000) as info:
        page.get_by_role("link", name=f"Download the checkpoint of step {STEP}").click()
    archive = Path(info.value.path())  # waits until the whole file is there
    top = f"run-{run.pk}-step-{STEP}"
    with zipfile.ZipFile(archive) as z:
        assert z.testzip() is None  # every member's CRC checks out
        names = set(z.namelist())
        assert {f"{top}/agent.json", f"{top}/config.json", f"{top}/model.safetensors", f"{top}/tokenizer.json"} <= names
        agent = json.loads(z.read(f"{top}/agent.json"))
    assert agent["call_format"]["name"] == "tags" and [t["name"] for t in agent["tools"]] == ["search", "python"]
    assert "search for every name" in agent["system_prompt"]

    page.get_by_role("link", name=f"Try the agent of step {STEP}").click()
    expect(page).to_have_url(re.compile(rf"/runs/{run.pk}/checkpoints/{STEP}/try/$"))
    expect(page.locator("[data-side=trained] .answer-placeholder")).to_be_visible()
    page.get_by_role("button", name=re.compile("Senna Heindkiav")).click()  # an example of the run's data
    box = page.get_by_label("Your question")
    expect(box).to_have_value(QUESTION)
    expect(box).to_be_focused()
    box.press("Control+Enter")
    expect(page).to_have_url(re.compile(r"/playground/\d+/$"))
    session = PlaygroundSession.objects.get()

    trained, base = page.locator("[data-side=trained]"), page.locator("[data-side=base]")
    expect(trained.locator(".read-call").first).to_contain_text("Senna Heindkiav", timeout=ANSWER_WAIT_MS)
    expect(trained.locator(".read-result").first).to_contain_text("born in 1897", timeout=60_000)
    expect(trained.locator(".pg-final, .pg-error")).to_be_visible(timeout=ANSWER_WAIT_MS)
    expect(trained.locator(".pg-final-answer")).to_be_visible()
    expect(base.locator(".pg-final, .pg-error")).to_be_visible(timeout=ANSWER_WAIT_MS)
    expect(base.locator(".pg-text").first).not_to_be_empty()
    expect(page.locator("[data-session-status]")).to_have_text("Done", timeout=30_000)
    # Streamed over the session's socket, not loaded with the page: it saw every event the worker stored.
    session.refresh_from_db()
    assert page.evaluate("window.arpoPlayground.socket.lastSeq") == session.last_seq > 10
    assert session.status == "done" and session.sides == {"trained": "done", "base": "done"}

    page.locator("#main").focus()
    screenshot(page, "playground")

    # A phone: the two answers stack and nothing runs off the side of the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(trained.locator(".pg-final-answer")).to_be_visible()
    trained_box, base_box = trained.bounding_box(), base.bounding_box()
    assert trained_box and base_box and base_box["y"] >= trained_box["y"] + trained_box["height"]
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(tmp_path / "playground-phone.png"), full_page=True)  # to look at, not kept
    # Dark: the page follows the system's colour scheme.
    page.emulate_media(color_scheme="dark")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 18, 22)", background
    page.screenshot(path=str(tmp_path / "playground-dark.png"), full_page=True)
