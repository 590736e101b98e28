"""Preflight through a real Celery worker on the "short" queue: the demo SFT model on the demo task, and the
untrained base model, which never calls a tool. Kept small (1 prompt x 2 paths, 128 tokens) for this CPU."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from tests.webapp import factories as make
from tests.webapp.conftest import api_for
from tests.worker.fixtures import _stop, start_worker
from webapp.core.management.commands.seed_demo import demo_config, run_overrides
from webapp.runs.models import Run
from webapp.tools.services import tool_create

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
__all__ = ["api_for"]  # the fixture, imported for this module
SMALL = {"ARPO_PREFLIGHT_PROMPTS": "1", "ARPO_PREFLIGHT_PATHS": "2", "ARPO_PREFLIGHT_MAX_TOKENS": "128"}


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return Path(settings.MEDIA_ROOT)


@pytest.fixture
def alice(transactional_db: None) -> User:
    return User.objects.create_user("alice", "alice@example.com", "correct-horse-battery-9")


def _demo_run(user: Any, base_model: str) -> Run:
    corpus = make.dataset(user, kind="corpus", rows=200)
    tools = [
        tool_create(user=user, name="search", kind="search", corpus=corpus.pk, top_k=2),
        tool_create(user=user, name="python", kind="python", timeout_s=10),
    ]
    from webapp.runs.services import run_create

    run = run_create(user=user, name="demo check", preset="arpo_paper", base_model=base_model,
                     dataset=make.dataset(user), tools=[t.pk for t in tools],
                     overrides=run_overrides(demo_config()))  # fmt: skip
    assert run.launchable, run.errors
    return run


def _check(api: Any, run: Run, settings: Any, tmp_path: Path) -> dict[str, Any]:
    worker = start_worker("short", settings, tmp_path / "worker.log", SMALL)
    try:
        started = time.monotonic()
        check = api.post(f"/api/v1/runs/{run.pk}/preflight/").json()
        while check["status"] not in ("done", "failed"):
            assert time.monotonic() - started < 900, f"the check did not finish:\n{worker.log()[-3000:]}"
            time.sleep(2)
            check = api.get(f"/api/v1/runs/{run.pk}/preflight/{check['id']}/").json()
        check["elapsed_s"] = time.monotonic() - started
        print(f"preflight of {run.base_model.slug}: {check['elapsed_s']:.0f} s, timings {check['timings']}")
        return check
    finally:
        _stop(worker.process)


def test_the_demo_sft_model_is_checked_on_the_worker_with_sane_metrics(
    alice: Any, api_for: Any, settings: Any, tmp_path: Path
) -> None:
    run = _demo_run(alice, "smollm2-135m-demo-sft")
    check = _check(api_for(alice), run, settings, tmp_path)
    assert check["status"] == "done", check["error"]
    metrics = check["results"]["metrics"]
    for key in ("tools/call_rate", "format/ok_frac", "response/clip_frac", "groups/degenerate_frac"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["rollout/paths"] == 2 and 0 < metrics["response/len_mean"] <= 128
    assert -1.0 <= metrics["reward/mean"] <= 1.1 and metrics["reward/std"] >= 0
    assert metrics["tools/call_rate"] > 0  # the cold start taught it to call tools
    prompt = check["results"]["prompt_text"]
    assert "<search>" in prompt and "invented world" in prompt  # the tools and the run's system prompt, as sent
    assert check["timings"]["total_s"] > 0


def test_the_base_model_gets_the_never_calls_a_tool_warning(
    alice: Any, api_for: Any, settings: Any, tmp_path: Path
) -> None:
    check = _check(api_for(alice), _demo_run(alice, "smollm2-135m"), settings, tmp_path)
    assert check["status"] == "done", check["error"]
    assert check["results"]["metrics"]["tools/call_rate"] == 0.0
    codes = [w["code"] for w in check["warnings"]]
    assert "no_tool_calls" in codes
