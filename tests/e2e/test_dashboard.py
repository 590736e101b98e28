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


def recorded_run(
    user: User, name: str, flavour: str, *, twin_of: Run | None = None, eval_before_training: bool = False
) -> Run:
    """A run at step STEPS of TOTAL, its events recorded through the relay's service (as a worker does).
    `eval_before_training`: a step-0 point with only eval metrics first, as the engine records its held-out
    evaluation of the starting model."""
    run = make.run(user, name=name)
    config = {**run.config, "train": {**run.config["train"], "steps": TOTAL}}
    Run.objects.filter(pk=run.pk).update(status=Run.Status.QUEUED, config=config, twin_of=twin_of)
    rng = random.Random(7 if flavour == "arpo" else 8)
    events: list[dict[str, Any]] = [{"kind": "status", "data": {"status": "running"}},
                                    {"kind": "phase", "data": {"phase": "training"}},
                                    {"kind": "log", "data": {"line": "loading the model", "level": "info"}}]  # fmt: skip
    if eval_before_training:
        start_eval = {"eval/accuracy": 0.08, "eval/format_ok": 0.4, "eval/reward_mean": -0.5}
        events.append({"kind": "metrics", "step": 0, "data": start_eval})
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


def record(run: Run, events: list[dict[str, Any]]) -> None:
    """More events, numbered after the run's last, recorded as the relay does, from a thread of its own: the
    broadcast after commit uses async_to_sync, which refuses to run in this thread (Playwright's loop is here)."""

    def work() -> None:
        from django.db import connection

        try:
            numbered = [{**event, "seq": run.last_seq + i} for i, event in enumerate(events, start=1)]
            recording.run_events_record(run_id=run.pk, events=numbered)
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    run.refresh_from_db()


def record_step(run: Run, step: int) -> None:
    record(run, [{"kind": "metrics", "step": step, "data": metrics(step, random.Random(1), "arpo")}])
    assert run.steps_done == step


X_RANGES = """() => window.arpoRunPage.charts.charts
    .filter((c) => c.plot && !c.element.classList.contains("is-empty"))
    .map((c) => [c.spec.id, c.plot.scales.x.min, c.plot.scales.x.max])"""
"""Each drawn chart's x-axis (uPlot's scale), read from the page's charts (run_page.ts exposes them)."""


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

    # GRPO never forks: its fork rate is a flat 0 %, drawn on a band around 0 %, not uPlot's 0 to 100 (10,000 %)
    page.goto(f"/runs/{grpo.pk}/")
    expect(page.locator("[data-run-charts] canvas").first).to_be_visible()
    y = page.evaluate("""() => Object.fromEntries(window.arpoRunPage.charts.charts.filter((c) => c.plot)
        .map((c) => [c.spec.id, [c.plot.scales.y.min, c.plot.scales.y.max]]))""")
    assert y["fork-rate"][0] == 0 and 0 < y["fork-rate"][1] <= 0.2, y["fork-rate"]


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


def test_charts_show_the_eval_before_training_follow_new_steps_and_zoom_together(dash_page: Page, alice: User) -> None:
    """The held-out eval of the starting model (step 0) precedes every train metric (step 1 on): a chart of
    train metrics alone fits 1..N. That fit must not pin the other charts to it, hiding step 0 and the
    steps still to come; a user's zoom (drag, the toolbar) still applies to all, and double-click resets."""
    page = dash_page
    run = recorded_run(alice, "ARPO with a starting eval", "arpo", eval_before_training=True)
    page.goto(f"/runs/{run.pk}/")
    expect(page.locator(".conn-badge")).to_contain_text("Live")
    expect(page.locator("[data-run-charts] canvas").first).to_be_visible()
    page.wait_for_timeout(300)
    expect(page.locator("[data-from]")).to_have_value("")
    expect(page.locator("[data-to]")).to_have_value("")
    expect(page.locator("[data-reset]")).to_be_disabled()
    ranges = {chart: (lo, hi) for chart, lo, hi in page.evaluate(X_RANGES)}
    assert ranges["accuracy"] == (0, STEPS), ranges  # the starting eval is on the chart
    assert ranges["token-entropy"] == (1, STEPS), ranges  # train-only: its own points

    record_step(run, STEPS + 1)
    page.wait_for_function(
        f"() => window.arpoRunPage.charts.charts.every((c) => !c.plot || c.plot.scales.x.max === {STEPS + 1} || c.element.classList.contains('is-empty'))"
    )
    expect(page.locator("[data-from]")).to_have_value("")

    box = page.locator(".chart .u-over").first.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=5)
    page.mouse.up()
    expect(page.locator("[data-from]")).not_to_have_value("")
    expect(page.locator("[data-reset]")).to_be_enabled()
    zoomed = {(lo, hi) for _, lo, hi in page.evaluate(X_RANGES)}
    assert len(zoomed) == 1 and next(iter(zoomed))[1] < STEPS, zoomed  # every chart shows the dragged range

    page.locator(".chart .u-over").nth(3).dblclick()
    expect(page.locator("[data-from]")).to_have_value("")
    expect(page.locator("[data-reset]")).to_be_disabled()

    page.locator("[data-from]").fill("10")
    page.locator("[data-from]").press("Tab")  # applied on leaving the field; "to" now shows the newest step
    expect(page.locator("[data-to]")).to_have_value(str(STEPS + 1))
    page.locator("[data-to]").fill("20")
    page.locator("[data-to]").press("Enter")
    assert {(lo, hi) for _, lo, hi in page.evaluate(X_RANGES)} == {(10, 20)}
    page.get_by_role("button", name="Show all").click()
    expect(page.locator("[data-from]")).to_have_value("")


def test_the_page_head_follows_the_run_to_its_end(dash_page: Page, alice: User) -> None:
    """Status badge, state line and actions are the server's: when the run succeeds while the page is open,
    the head is fetched again, and Cancel gives way to what a finished run offers."""
    page = dash_page
    run = recorded_run(alice, "ARPO that finishes", "arpo")
    page.goto(f"/runs/{run.pk}/")
    expect(page.locator(".conn-badge")).to_contain_text("Live")
    head = page.locator("[data-run-head]")
    expect(head.get_by_role("button", name="Cancel run")).to_be_visible()
    expect(head.locator(".run-state")).to_contain_text(f"Running · training · step {STEPS} of {TOTAL}")

    record_step(run, STEPS + 1)
    expect(head.locator(".run-state")).to_contain_text(f"step {STEPS + 1} of {TOTAL}")

    record(run, [{"kind": "phase", "data": {"phase": "finished"}}, {"kind": "status", "data": {"status": "succeeded"}}])
    assert run.status == Run.Status.SUCCEEDED
    expect(head).to_have_attribute("data-status", "succeeded")
    expect(head.locator(".badge")).to_contain_text("Succeeded")
    expect(head.get_by_role("button", name="Cancel run")).to_have_count(0)
    expect(head.get_by_role("link", name="Checkpoints")).to_be_visible()
    expect(page.locator("[data-run-status]")).to_contain_text("Succeeded")
