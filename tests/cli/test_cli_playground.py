"""`arpo checkpoints try` against a live server and a real Celery worker on the `short` queue: the tiny
model's checkpoint and the run's base model answer, and the command prints both as they come."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from typer.testing import CliRunner

from arpo_cli.main import app
from tests.worker.fixtures import CeleryWorker, celery_worker
from tests.worker.test_playground import make_tiny_run
from webapp.accounts.models import ApiToken
from webapp.playground.models import PlaygroundSession
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["celery_worker"]


@pytest.fixture(autouse=True)
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return Path(settings.MEDIA_ROOT)


@pytest.fixture
def alice(transactional_db: None) -> User:
    return User.objects.create_user("alice", "alice@example.com", "correct-horse-battery-9")


def _cli(user: User, live_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ARPO_CONFIG_DIR", str(tmp_path / "arpo-config"))
    monkeypatch.setenv("ARPO_URL", live_server.url)
    monkeypatch.setenv("ARPO_TOKEN", ApiToken.objects.create(user=user, name="cli", expiry=None)[1])
    return CliRunner()


@pytest.fixture
def run(alice: User, tiny_model_dir: Path) -> Run:
    return make_tiny_run(alice, tiny_model_dir)


def test_try_prints_both_answers_as_they_come_and_exits_0(
    alice: User, run: Run, celery_worker: CeleryWorker, live_server: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    cli = _cli(alice, live_server, tmp_path, monkeypatch)
    result = cli.invoke(app, ["checkpoints", "try", str(run.pk), "latest", "What is 6 * 7?", "--poll", "0.2",
                              "--timeout", "240"], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output + celery_worker.log()[-2000:]
    out = result.output
    assert "── trained agent (step 1) ──" in out and "── base model (Tiny (test)) ──" in out
    assert out.count("final answer:") == 2
    session = PlaygroundSession.objects.get()
    assert session.status == "done" and session.question == "What is 6 * 7?"
    assert f"/playground/{session.pk}/" in out


def test_try_says_why_it_cannot_ask_and_exits_1(
    alice: User, run: Run, live_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = _cli(alice, live_server, tmp_path, monkeypatch)
    empty = cli.invoke(app, ["checkpoints", "try", str(run.pk), "latest", "  "], catch_exceptions=False)
    assert empty.exit_code == 1 and "Type a question" in empty.output
    missing = cli.invoke(app, ["checkpoints", "try", str(run.pk), "9", "Hi?"], catch_exceptions=False)
    assert missing.exit_code == 1 and "no checkpoint at step 9" in missing.output
    charlie = User.objects.create_user("charlie", "c@example.com", "correct-horse-battery-9")
    outsider = _cli(charlie, live_server, tmp_path, monkeypatch)
    refused = outsider.invoke(app, ["checkpoints", "try", str(run.pk), "latest", "Hi?"], catch_exceptions=False)
    assert refused.exit_code == 1 and "No such run" in refused.output
    assert not PlaygroundSession.objects.exists()


def test_the_printer_sets_tool_calls_and_results_on_lines_of_their_own() -> None:
    from arpo_cli.playground import Printer

    out: list[str] = []
    printer = Printer(write=out.append, labels={"trained": "step 3", "base": "SmolLM2"})
    events = [
        ("trained", "status", {"state": "loading", "model": "step 3"}),
        ("trained", "model", {"text": "<think>Look it "}),
        ("trained", "model", {"text": "up.</think>"}),
        ("trained", "tool_call", {"index": 1, "name": "search", "arguments": {"query": "Senna"}}),
        ("trained", "tool_result", {"index": 1, "name": "search", "output": "born 1897", "latency_ms": 12.3}),
        ("trained", "final", {"answer": "157", "finish_reason": "eos", "tool_calls": 1, "tokens": 40, "seconds": 2.5}),
        ("base", "model", {"text": "I think 101."}),
        ("base", "error", {"message": "Stopped after 120 s"}),
    ]
    for side, kind, data in events:
        printer.event({"side": side, "kind": kind, "data": data})
    assert "".join(out) == (
        "\n── trained agent (step 3) ──\n(loading step 3 …)\n<think>Look it up.</think>\n"
        "[tool call 1 · search] Senna\n[result · search · 12 ms]\n  born 1897\n"
        "final answer: 157  (eos, 1 tool calls, 40 tokens, 2.5 s)\n"
        "\n── base model (SmolLM2) ──\nI think 101.\nno answer: Stopped after 120 s\n"
    )
    assert printer.finals == {"trained": "157", "base": "(no answer: Stopped after 120 s)"}
