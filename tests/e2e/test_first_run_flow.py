"""Issue 8's browser proof: a new user signs up, uploads the demo dataset and sees its preview, defines a
python tool and tries it on the real Celery worker, then configures a run from the ARPO preset, meets a
field error (M < N) at its field, fixes it and gets a launchable draft. Screenshots of each page land in
docs/screenshots/.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.worker.fixtures import CeleryWorker, celery_worker  # noqa: F401  (fixture)
from webapp.runs.models import Run

pytestmark = [pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
DEMO_TRAIN = ROOT / "var" / "demo" / "train.jsonl"
PASSWORD = "a-long-demo-password-42"


def _sign_up(page: Page) -> None:
    page.goto("/signup/")
    page.get_by_label("Username").fill("dana")
    page.get_by_label("E-mail").fill("dana@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("navigation", name="Account")).to_contain_text("dana")


def _upload_demo_dataset(page: Page, screenshot: Callable[[Page, str], Path]) -> None:
    page.goto("/datasets/new/")
    page.set_input_files('input[name="file"]', str(DEMO_TRAIN))
    page.fill('input[name="name"]', "demo questions")
    page.fill('input[name="eval_percent"]', "5")
    screenshot(page, "dataset-upload")
    page.get_by_role("button", name="Upload and check").click()
    expect(page.get_by_role("heading", name="demo questions")).to_be_visible()
    preview = page.locator("#preview")
    expect(preview).to_contain_text("How many people live in")  # the first demo question, as the model sees it
    expect(preview.locator("svg")).to_be_visible()  # the prompt-length histogram
    screenshot(page, "dataset-preview")


def _define_and_try_python_tool(page: Page, screenshot: Callable[[Page, str], Path]) -> None:
    page.goto("/tools/new/?kind=python")
    page.fill('input[name="name"]', "python")
    screenshot(page, "tool-create")
    page.get_by_role("button", name="Define tool").click()
    expect(page.get_by_role("heading", name="python")).to_be_visible()
    page.fill('textarea[name="arguments"]', '{"code": "print(6 * 7)"}')
    page.get_by_role("button", name="Run", exact=True).click()
    # The page polls the trial until the worker has run it in the sandbox.
    expect(page.locator('#trial [data-field="output"]')).to_contain_text("42", timeout=60_000)
    expect(page.locator('#trial [data-field="status"]')).to_have_text("done")
    screenshot(page, "tool-try")


def _configure_run_and_fix_a_field_error(page: Page, screenshot: Callable[[Page, str], Path]) -> None:
    page.goto("/runs/new/")
    screenshot(page, "run-presets")
    page.get_by_role("link", name=re.compile(r"^Use ARPO")).click()
    page.fill('input[name="name"]', "first ARPO run")
    page.select_option('select[name="base_model"]', label="SmolLM2-135M demo SFT")
    dataset_value = page.locator('select[name="dataset"] option', has_text="demo questions").get_attribute("value")
    page.select_option('select[name="dataset"]', value=dataset_value)
    page.get_by_role("checkbox", name="python").check()
    page.fill('[name="rollout.group_size"]', "4")
    page.fill('[name="rollout.initial_samples"]', "8")
    page.get_by_role("button", name="Create and check").click()

    # A draft is saved with its problem shown at the field: M must be at least N.
    knob = page.locator(".knob.has-error").filter(has=page.locator('[name="rollout.initial_samples"]'))
    if not knob.count():
        page.get_by_role("link", name=re.compile("Edit")).first.click()
        knob = page.locator(".knob.has-error").filter(has=page.locator('[name="rollout.initial_samples"]'))
    expect(knob.locator(".errorlist")).to_be_visible()
    knob.scroll_into_view_if_needed()
    screenshot(page, "run-field-error")
    run = Run.objects.get(name="first ARPO run")
    assert not run.launchable and run.errors

    page.fill('[name="rollout.initial_samples"]', "2")
    page.get_by_role("button", name="Save and check").click()
    expect(page.get_by_text("launchable", exact=False).first).to_be_visible()
    run.refresh_from_db()
    assert run.launchable, run.errors
    assert run.config["rollout"]["group_size"] == 4 and run.config["rollout"]["initial_samples"] == 2
    screenshot(page, "run-detail")


def test_new_user_uploads_data_tries_a_tool_and_configures_a_launchable_run(
    page: Page, screenshot: Callable[[Page, str], Path], celery_worker: CeleryWorker  # noqa: F811
) -> None:
    _sign_up(page)
    _upload_demo_dataset(page, screenshot)
    _define_and_try_python_tool(page, screenshot)
    _configure_run_and_fix_a_field_error(page, screenshot)
