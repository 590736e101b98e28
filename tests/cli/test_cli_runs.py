"""`arpo runs launch|cancel|resume|watch` and `arpo checkpoints list|download` against a live server over HTTP.

The runs' events and checkpoints are recorded through the worker's recording service (as a run's relay
would), and the checkpoint folders are written by the engine's CheckpointManager; the real launch on
Ray is proven in tests/e2e/test_run_execute.py.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from typer.testing import CliRunner

from arpo_cli.main import app
from tests.webapp import factories as make
from webapp.accounts.models import ApiToken
from webapp.runs import lifecycle, recording
from webapp.runs.models import Run
from webapp.runs.services import run_create

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct-horse-battery-9"
STEP_LINE = re.compile(r"^step +(\d+)/(\d+) \[([#.]+)\] +(\d+)%  reward ", re.M)


@pytest.fixture
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return Path(settings.MEDIA_ROOT)


def _user(name: str) -> User:
    return User.objects.create_user(name, f"{name}@example.com", PASSWORD)


@pytest.fixture
def alice(transactional_db: None, media: Path) -> User:
    return _user("alice")


def _token(user: User) -> str:
    return ApiToken.objects.create(user=user, name="cli", expiry=None)[1]


@pytest.fixture
def cli(live_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alice: User) -> CliRunner:
    """Signed in as alice through ARPO_TOKEN (`arpo login` has its own tests)."""
    monkeypatch.setenv("ARPO_CONFIG_DIR", str(tmp_path / "arpo-config"))
    monkeypatch.setenv("ARPO_URL", live_server.url)
    monkeypatch.setenv("ARPO_TOKEN", _token(alice))
    return CliRunner()


def arpo(cli: CliRunner, *args: str) -> Any:
    return cli.invoke(app, list(args), catch_exceptions=False)


def _launched(user: User, steps: int = 3) -> Run:
    run = run_create(user=user, name="watched", preset="arpo_paper", base_model="smollm2-135m",
                     dataset=make.dataset(user), overrides={"train.steps": steps})  # fmt: skip
    return lifecycle.run_launch(user=user, run=run)


def _events(start: int, *specs: tuple[str, int | None, dict[str, Any]]) -> list[dict[str, Any]]:
    at = time.time()
    return [
        {"seq": start + i, "kind": kind, "step": step, "data": data, "at": at + i}
        for i, (kind, step, data) in enumerate(specs)
    ]


def _metrics(step: int) -> tuple[str, int, dict[str, Any]]:
    return ("metrics", step, {"reward/mean": 0.25 * step, "accuracy": 0.5, "tools/calls_per_traj": 1.0})


def test_launch_queues_a_draft_and_prints_its_position(cli: CliRunner, alice: User) -> None:
    run = make.run(alice, name="to-launch")
    result = arpo(cli, "runs", "launch", str(run.pk))
    assert result.exit_code == 0, result.output
    assert f"Run {run.pk}: queued, position 1" in result.output
    assert Run.objects.get(pk=run.pk).status == "queued"


def test_launching_twice_prints_the_servers_reason_and_exits_1(cli: CliRunner, alice: User) -> None:
    run = _launched(alice)
    result = arpo(cli, "runs", "launch", str(run.pk))
    assert result.exit_code == 1 and "only a draft can be launched" in result.output


def test_cancel_then_resume_queues_the_run_again(cli: CliRunner, alice: User) -> None:
    run = _launched(alice)
    cancelled = arpo(cli, "runs", "cancel", str(run.pk))
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output  # queued, no worker held it: at once
    resumed = arpo(cli, "runs", "resume", str(run.pk), "--json")
    assert resumed.exit_code == 0, resumed.output
    assert '"status": "queued"' in resumed.output and Run.objects.get(pk=run.pk).status == "queued"


def test_watch_prints_one_line_per_step_with_a_progress_bar_and_exits_0_on_success(cli: CliRunner, alice: User) -> None:
    run = _launched(alice, steps=3)
    events = _events(
        1, ("status", None, {"status": "running"}), _metrics(1), _metrics(2),
        ("eval", 2, {"eval/accuracy": 0.75}), ("checkpoint", 2, {"folder": "x", "size_bytes": 2_500_000}),
        _metrics(3), ("status", None, {"status": "succeeded", "steps_done": 3}),
    )  # fmt: skip
    recording.run_events_record(run_id=run.pk, events=events)
    result = arpo(cli, "runs", "watch", str(run.pk), "--poll", "0.2")
    assert result.exit_code == 0, result.output
    steps = STEP_LINE.findall(result.output)
    assert [(s, total, pct) for s, total, _, pct in steps] == [("1", "3", "33"), ("2", "3", "67"), ("3", "3", "100")]
    assert [bar.count("#") for _, _, bar, _ in steps] == [7, 13, 20]
    assert "reward 0.500" in result.output and "1.0 s" in result.output  # step 2; a second after step 1
    assert "eval at step 2: accuracy 0.750" in result.output and "checkpoint saved: step 2 (2.4 MB)" in result.output
    assert result.output.rstrip().endswith("status: succeeded")


def test_watch_follows_a_live_run_until_it_fails_and_exits_1_with_the_reason(cli: CliRunner, alice: User) -> None:
    run = _launched(alice, steps=3)
    recording.run_events_record(run_id=run.pk, events=_events(1, ("status", None, {"status": "running"}), _metrics(1)))

    def later() -> None:  # the rest arrives while `watch` is polling
        try:
            time.sleep(1.5)
            recording.run_events_record(run_id=run.pk, events=_events(3, _metrics(2)))
            time.sleep(1.0)
            reason = "The model never called a tool in 2 steps: add SFT demonstrations."
            recording.run_events_record(run_id=run.pk, events=_events(4, ("status", None, {"status": "failed",
                                                                                          "reason": reason})))  # fmt: skip
        finally:
            connection.close()

    thread = threading.Thread(target=later)
    thread.start()
    started = time.monotonic()
    result = arpo(cli, "runs", "watch", str(run.pk), "--poll", "0.2")
    thread.join()
    assert result.exit_code == 1, result.output
    assert time.monotonic() - started > 2  # it waited for the run, not for a snapshot
    assert [s for s, *_ in STEP_LINE.findall(result.output)] == ["1", "2"]
    assert "status: failed" in result.output and "reason: The model never called a tool" in result.output


def test_watch_exits_2_for_a_run_cancelled_before_it_started(cli: CliRunner, alice: User) -> None:
    run = lifecycle.run_cancel(user=alice, run=_launched(alice))  # no event: the state says it
    result = arpo(cli, "runs", "watch", str(run.pk), "--poll", "0.2")
    assert result.exit_code == 2 and "status: cancelled" in result.output


def test_watch_gives_up_after_its_timeout_with_exit_3(cli: CliRunner, alice: User) -> None:
    run = _launched(alice)
    result = arpo(cli, "runs", "watch", str(run.pk), "--poll", "0.2", "--timeout", "1")
    assert result.exit_code == 3 and "queued, position 1" in result.output


@pytest.fixture
def saved(alice: User, tiny_model_dir: Path) -> Run:
    """alice's run with steps 1 (best) and 2 (latest) saved by the engine and recorded by the relay's service."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from arpo_engine.checkpoint import CheckpointManager

    run = _launched(alice, steps=2)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    manager = CheckpointManager(run.checkpoint_dir(), str(run.pk), keep_last=3)
    for seq, (step, accuracy) in enumerate([(1, 0.5), (2, 0.25)], start=1):
        metrics = {"eval/accuracy": accuracy}
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        folder = manager.save(step, model, tokenizer, run_config=run.config, metrics=metrics, optimizer=optimizer,
                              best_metric=accuracy)  # fmt: skip
        data = {"folder": str(folder), "size_bytes": 1, "metrics": metrics}
        recording.run_events_record(run_id=run.pk, events=_events(seq, ("checkpoint", step, data)))
    return run


def test_checkpoints_download_streams_extracts_and_the_folder_loads_with_transformers(
    cli: CliRunner, saved: Run, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    result = arpo(cli, "checkpoints", "download", str(saved.pk), "-o", str(tmp_path / "dl"))
    assert result.exit_code == 0, result.output
    folder = tmp_path / "dl" / f"run-{saved.pk}-step-2"
    assert f"Saved {folder}" in result.output.replace("\n", "")
    assert AutoModelForCausalLM.from_pretrained(folder).config.num_hidden_layers == 2
    assert not (folder / "optimizer.safetensors").exists() and not (folder / "state.json").exists()
    assert [p.name for p in (tmp_path / "dl").iterdir()] == [folder.name]  # no partial archive left behind


def test_checkpoints_download_by_step_or_best_and_list(cli: CliRunner, saved: Run, tmp_path: Path) -> None:
    by_step = arpo(cli, "checkpoints", "download", str(saved.pk), "--step", "2", "-o", str(tmp_path / "a"), "--zip")
    assert by_step.exit_code == 0 and (tmp_path / "a" / f"run-{saved.pk}-step-2.zip").is_file()
    best = arpo(cli, "checkpoints", "download", str(saved.pk), "best", "-o", str(tmp_path / "b"))
    assert best.exit_code == 0 and (tmp_path / "b" / f"run-{saved.pk}-step-1" / "config.json").is_file()
    listed = arpo(cli, "checkpoints", "list", str(saved.pk), "--json")
    assert listed.exit_code == 0 and '"best": true' in listed.output


def test_an_outsider_gets_not_found_and_nothing_is_written(
    cli: CliRunner, saved: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARPO_TOKEN", _token(_user("charlie")))
    result = arpo(cli, "checkpoints", "download", str(saved.pk), "-o", str(tmp_path / "c"))
    assert result.exit_code == 1 and "Error" in result.output and "Traceback" not in result.output
    assert list((tmp_path / "c").iterdir()) == []
