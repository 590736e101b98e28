"""The live dashboard in Debian's chromium against uvicorn (HTTP + websockets, Redis channel layer):
a run whose events were recorded through the relay's service shows its charts and rollout trees, goes
live over its websocket, draws a new step without a reload, opens a path; two runs compare. Screenshots
in docs/screenshots/ (run-page, rollout-tree, compare, run-list).
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import Browser, Page, expect

from tests.e2e.asgi_server import asgi_server  # noqa: F401  (fixture)
from tests.webapp import factories as make
from webapp.runs import recording
from webapp.runs.models import BaseModel, Run

pytestmark = [pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
TREES = json.loads((ROOT / "webapp" / "frontend" / "src" / "fixtures" / "rollout_trees.json").read_text())["trees"]
STEPS, TOTAL = 40, 60
STEP_S = 35.0


def metrics(step: int, rng: random.Random, flavour: str) -> dict[str, float]:
    """Plausible metrics of one step (the front end's demo harness does the same in JS)."""
    t, arpo = step / TOTAL, flavour == "arpo"
    learn = 1 - math.exp(-4 * t) * (1.0 if arpo else 1.15)

    def noise(s: float) -> float:
        return (rng.random() - 0.5) * 2 * s

    values = {
        "reward/mean": -0.55 + learn + noise(0.12), "reward/std": 0.5 + noise(0.05),
        "accuracy": max(0.0, 0.12 + 0.45 * learn + noise(0.06)),
        "format/ok_frac": min(1.0, 0.45 + 0.5 * learn + noise(0.04)),
        "groups/degenerate_frac": max(0.0, 0.35 - 0.2 * learn + noise(0.05)),
        "entropy/token_mean": 1.25 - 0.35 * t + noise(0.05),
        "entropy/initial_mean": 0.34 - 0.06 * t + noise(0.02),
        "entropy/after_tool_mean": 0.56 - 0.12 * t + noise(0.03),
        "branch/forks": float(round(5 - 2 * t + noise(1.5))) if arpo else 0.0,
        "branch/fork_rate": max(0.0, 0.42 - 0.15 * t + noise(0.06)) if arpo else 0.0,
        "tools/calls_per_traj": 1.4 + (0.9 if arpo else 0.6) * learn + noise(0.15),
        "tools/error_rate": max(0.0, 0.06 - 0.03 * t + noise(0.02)),
        "tools/latency_ms_p50": 38 * math.exp(noise(0.35)),
        "response/len_mean": 310 + 110 * learn + noise(18), "response/clip_frac": max(0.0, 0.03 + noise(0.01)),
        "loss/policy": noise(0.02), "loss/kl": 1e-4 * math.exp(3.6 * t), "clip/frac": max(0.0, 0.003 + noise(0.002)),
        "grad/norm": 0.45 * math.exp(noise(0.5)), "lr": 1e-6 * min(1.0, step / 20),
        "time/rollout_s": 24 + noise(4), "time/reward_s": 0.8, "time/update_s": 9 + noise(1), "time/sync_s": 1.6,
        "throughput/rollout_tok_s": 1800 + noise(200),
    }  # fmt: skip
    values["entropy/delta_mean"] = values["entropy/after_tool_mean"] - values["entropy/initial_mean"]
    values["tools/calls_total"] = float(round(values["tools/calls_per_traj"] * 128))
    values["rollout/paths"] = 128.0
    # ARPO's forks share their parent's prefix, generated once: fewer tokens per step than GRPO's paths
    values["rollout/tokens_generated"] = float(round(values["response/len_mean"] * 128 * (0.8 if arpo else 1.0)))
    if step % 10 == 0 or step == 1:
        values["eval/accuracy"] = max(0.0, 0.1 + 0.48 * learn + noise(0.03))
        values["eval/format_ok"] = min(1.0, 0.5 + 0.47 * learn + noise(0.02))
        values["eval/tool_calls_per_traj"] = 1.3 + 0.9 * learn
    return values


def recorded_run(user: User, name: str, flavour: str, *, twin_of: Run | None = None) -> Run:
    """A run at step STEPS of TOTAL, its events recorded through the relay's service (as a worker does)."""
    run = make.run(user, name=name)
    config = {**run.config, "train": {**run.config["train"], "steps": TOTAL}}
    Run.objects.filter(pk=run.pk).update(status=Run.Status.QUEUED, config=config, twin_of=twin_of)
    rng = random.Random(7 if flavour == "arpo" else 8)
    events: list[dict[str, Any]] = [{"kind": "status", "data": {"status": "running"}},
                                    {"kind": "phase", "data": {"phase": "training"}},
                                    {"kind": "log", "data": {"line": "loading the model", "level": "info"}}]  # fmt: skip
    for step in range(1, STEPS + 1):
        events.append({"kind": "metrics", "step": step, "data": metrics(step, rng, flavour)})
        if step in (STEPS - 1, STEPS):
            events += [{"kind": "rollout", "step": step, "data": tree["data"]} for tree in TREES]
        if step % 20 == 0:
            events.append({"kind": "checkpoint", "step": step, "data": {
                "folder": str(Path(settings.MEDIA_ROOT) / "runs" / str(run.uid) / f"step-{step}"),
                "size_bytes": 270_000_000, "metrics": {"accuracy": 0.4}}})  # fmt: skip
            events.append({"kind": "log", "data": {"line": f"step {step}: checkpoint saved", "level": "info"}})
    start = time.time() - STEP_S * (STEPS + 1)  # the engine's clock: one step every STEP_S seconds, for the ETA
    for seq, event in enumerate(events, start=1):
        event["seq"] = seq
        event["at"] = start + STEP_S * (event.get("step") or 0)
    recording.run_events_record(run_id=run.pk, events=events)
    Run.objects.filter(pk=run.pk).update(started_at=datetime.fromtimestamp(start, tz=UTC))
    run.refresh_from_db()
    return run


def record_step(run: Run, step: int) -> None:
    """One more step, recorded as the relay does, from a thread of its own: the broadcast after commit uses
    async_to_sync, which refuses to run in this thread (Playwright's event loop lives here)."""

    def work() -> None:
        from django.db import connection

        try:
            data = metrics(step, random.Random(1), "arpo")
            recording.run_events_record(
                run_id=run.pk, events=[{"seq": run.last_seq + 1, "kind": "metrics", "step": step, "data": data}]
            )
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    run.refresh_from_db()
    assert run.steps_done == step


@pytest.fixture
def smollm(transactional_db: None) -> None:
    # A transactional test's flush empties the catalogue the migrations filled: put back the model runs name.
    BaseModel.objects.get_or_create(slug="smollm2-135m", defaults={"display_name": "SmolLM2-135M-Instruct",
                                                                   "path": "smollm2-135m"})  # fmt: skip


@pytest.fixture
def dash_page(browser: Browser, alice: User, asgi_server: str, smollm: None) -> Page:  # noqa: F811
    client = Client()
    client.force_login(alice)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    context = browser.new_context(base_url=asgi_server, viewport={"width": 1440, "height": 900})
    context.set_default_timeout(20_000)
    context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": asgi_server}])
    return context.new_page()


def test_run_page_draws_history_goes_live_and_opens_a_path(
    dash_page: Page, alice: User, screenshot: Callable[[Page, str], Path]
) -> None:
    page = dash_page
    run = recorded_run(alice, "ARPO on the demo world", "arpo")
    page.goto(f"/runs/{run.pk}/")
    expect(page.locator(".conn-badge")).to_contain_text("Live")
    expect(page.locator("[data-run-charts] canvas").first).to_be_visible()
    assert page.locator("[data-run-charts] canvas").count() >= 6
    expect(page.locator("[data-run-trees] svg.tree-svg")).to_be_visible()
    expect(page.locator("[data-run-status]")).to_contain_text(f"{STEPS} / {TOTAL}")
    expect(page.locator("[data-run-checkpoints]")).to_contain_text("Step 40")
    expect(page.locator("[data-run-log]")).to_contain_text("checkpoint saved")

    record_step(run, STEPS + 1)  # the relay's path: database, then the run's group, then this page
    expect(page.locator("[data-run-status]")).to_contain_text(f"{STEPS + 1} / {TOTAL}")
    page.wait_for_timeout(400)  # the charts redraw on the next frame
    screenshot(page, "run-page")

    leaf = page.locator("[data-run-trees] svg.tree-svg [role=button][data-path]").first
    leaf.click()
    expect(page.locator("[data-run-trees]")).to_contain_text("tool")
    page.locator("#trees").scroll_into_view_if_needed()
    (ROOT / "docs" / "screenshots").mkdir(parents=True, exist_ok=True)
    page.locator("#trees").screenshot(path=str(ROOT / "docs" / "screenshots" / "rollout-tree.png"))


def test_compare_overlays_a_run_and_its_grpo_twin(
    dash_page: Page, alice: User, screenshot: Callable[[Page, str], Path]
) -> None:
    page = dash_page
    arpo = recorded_run(alice, "ARPO on the demo world", "arpo")
    grpo = recorded_run(alice, "GRPO twin", "grpo", twin_of=arpo)
    page.goto(f"/runs/{arpo.pk}/")
    page.get_by_role("link", name="Compare with its twin").click()
    expect(page).to_have_url(f"{page.url.split('/runs/')[0]}/runs/compare/?ids={arpo.pk},{grpo.pk}")
    expect(page.locator("[data-compare-table] tbody tr")).to_have_count(2)
    table = page.locator("[data-compare-table] table")
    headers = table.locator("thead th").all_inner_texts()
    assert [h.lower() for h in headers[5:7]] == ["tool calls / solved item", "tokens / step"], headers
    arpo_row, grpo_row = (table.locator("tbody tr").nth(i).locator("td").all_inner_texts() for i in (0, 1))
    assert all(cell not in ("", "–", "-") for cell in arpo_row[4:6] + grpo_row[4:6]), (arpo_row, grpo_row)
    expect(page.locator("[data-compare-charts] canvas").first).to_be_visible()
    page.wait_for_timeout(400)
    screenshot(page, "compare")


def test_run_list_shows_live_rows(dash_page: Page, alice: User, screenshot: Callable[[Page, str], Path]) -> None:
    page = dash_page
    run = recorded_run(alice, "ARPO on the demo world", "arpo")
    recorded_run(alice, "GRPO twin", "grpo", twin_of=run)
    page.goto("/runs/")
    row = page.locator(f'[data-run-row="{run.pk}"]')
    expect(row.locator("svg.sparkline")).to_be_visible()
    expect(page.locator("[data-run-list]")).to_have_attribute("data-live", "true")
    record_step(run, STEPS + 1)
    expect(row.locator('[data-cell="steps"]')).to_have_text(f"{STEPS + 1} / {TOTAL}")
    screenshot(page, "run-list")
