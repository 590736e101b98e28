"""Runs execute on the real stack: PostgreSQL, Redis, a Celery worker process on the `runs` queue, a local
Ray head, and the tiny random model (2 layers, the SmolLM2 tokenizer) with a very small config.

Datasets and tools are made through their services; runs are created, launched and cancelled through
the REST API, as a client would.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from tests.e2e.run_stack import (
    TERMINAL,
    api,
    create_run,
    listener_for,
    media_root,
    python_tool,
    status_of,
    tiny_base,
    wait_for,
)
from tests.webapp.runs.conftest import make_prompts
from tests.worker.fixtures import CeleryWorker, ray_head, runs_worker
from webapp.accounts.models import ApiToken
from webapp.runs.models import BaseModel, Checkpoint, MetricPoint, RolloutTree, Run, RunEvent, RunLease
from webapp.tools.services import tool_create

__all__ = ["api", "create_run", "listener_for", "media_root", "python_tool", "ray_head", "runs_worker", "tiny_base"]

pytestmark = pytest.mark.slow


def test_a_launched_run_trains_to_succeeded_and_every_event_reaches_the_database_and_the_group(
    runs_worker: CeleryWorker,
    api: APIClient,
    create_run: Callable[..., int],
    listener_for: Any,
    media_root: Path,
    tmp_path: Path,
) -> None:
    from transformers import AutoModelForCausalLM

    run_id = create_run("proof", steps=2)
    listener = listener_for(run_id)
    started = time.monotonic()
    response = api.post(f"/api/v1/runs/{run_id}/launch/")
    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "queued"

    wait_for(lambda: status_of(run_id) in TERMINAL, 240, runs_worker, "end of the run")
    elapsed = time.monotonic() - started
    run = Run.objects.get(pk=run_id)
    assert run.status == "succeeded", (run.status_reason, runs_worker.log()[-3000:])
    assert run.steps_done == 2
    assert list(MetricPoint.objects.filter(run=run).values_list("step", flat=True)) == [1, 2]
    assert "reward/mean" in MetricPoint.objects.get(run=run, step=2).values
    assert set(RolloutTree.objects.filter(run=run).values_list("step", flat=True)) == {1, 2}
    assert all(t.data["paths"] for t in RolloutTree.objects.filter(run=run))
    seqs = list(RunEvent.objects.filter(run=run).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)) and run.last_seq == len(seqs)
    kinds = set(RunEvent.objects.filter(run=run).values_list("kind", flat=True))
    assert {"metrics", "rollout", "eval", "checkpoint", "log", "phase", "status"} <= kinds
    phases = [e.data["phase"] for e in RunEvent.objects.filter(run=run, kind="phase").order_by("seq")]
    assert phases == ["loading", "training", "evaluating", "finished"]  # the eval is the last step's
    lags = [(e.recorded_at - e.emitted_at).total_seconds() for e in RunEvent.objects.filter(run=run)]
    assert max(lags) < 1.0, sorted(lags)[-5:]

    wait_for(lambda: any(m.get("seq") == run.last_seq for m in listener.messages), 10, runs_worker, "the last event")
    relayed = sorted(m["seq"] for m in listener.messages if m.get("seq") is not None)
    assert relayed == seqs  # every event once, in the run's group (no private line was emitted)
    assert {m["type"] for m in listener.messages} >= {"run.metrics", "run.rollout", "run.checkpoint", "run.status"}

    checkpoint = Checkpoint.objects.get(run=run, step=2)
    model = AutoModelForCausalLM.from_pretrained(media_root / checkpoint.folder)
    assert model.config.num_hidden_layers == 2
    # The download, as a client gets it: a streamed ZIP of the latest step that extracts and loads.
    download = api.get(f"/api/v1/runs/{run_id}/checkpoints/latest/download")
    assert download.status_code == 200, download.json()
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert not {n.rsplit("/", 1)[-1] for n in archive.namelist()} & {"optimizer.safetensors", "state.json"}
    archive.extractall(tmp_path / "download")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "download" / f"run-{run_id}-step-2")
    assert loaded.config.num_hidden_layers == 2
    assert run.wall_seconds > 0 and run.cpu_seconds > 0  # compute used, from the actor
    # The state turns terminal before the relay releases its lease: wait for that bookkeeping.
    wait_for(lambda: not RunLease.objects.filter(run=run, released_at__isnull=True).exists(), 60, runs_worker,
             "the lease's release")  # fmt: skip
    leases = list(RunLease.objects.filter(run=run))
    assert len(leases) == 1 and leases[0].released_at is not None and leases[0].outcome == "finished"
    print(
        f"\nrun {run_id}: launch -> succeeded in {elapsed:.1f} s, {len(seqs)} events, max relay lag {max(lags):.3f} s"
    )


def test_a_cancelled_run_stops_keeps_its_checkpoint_and_the_worker_takes_the_next_run(
    runs_worker: CeleryWorker, api: APIClient, create_run: Callable[..., int], media_root: Path
) -> None:
    long_id = create_run("long", steps=50)
    next_id = create_run("next", steps=1)
    assert api.post(f"/api/v1/runs/{long_id}/launch/").status_code == 202
    assert api.post(f"/api/v1/runs/{next_id}/launch/").status_code == 202
    state = api.get(f"/api/v1/runs/{next_id}/state/").json()
    assert state["status"] == "queued" and state["queue_position"] == 2 - (status_of(long_id) != "queued")

    wait_for(lambda: MetricPoint.objects.filter(run_id=long_id).exists(), 180, runs_worker, "a first step")
    assert status_of(next_id) == "queued"  # one worker, one run at a time: the next one waits
    response = api.post(f"/api/v1/runs/{long_id}/cancel/")
    assert response.status_code == 202 and response.json()["status"] == "cancelling"

    wait_for(lambda: status_of(long_id) in TERMINAL, 120, runs_worker, "the cancelled run's end")
    run = Run.objects.get(pk=long_id)
    assert run.status == "cancelled", run.status_reason
    assert run.status_reason == "Cancelled; the last checkpoint is kept."
    assert 1 <= run.steps_done < 50
    assert Checkpoint.objects.filter(run=run).exists()
    kept = Checkpoint.objects.filter(run=run).order_by("-step").first()
    assert kept is not None and (media_root / kept.folder / "config.json").is_file()

    wait_for(lambda: status_of(next_id) in TERMINAL, 180, runs_worker, "the next run's end")
    assert status_of(next_id) == "succeeded", Run.objects.get(pk=next_id).status_reason


def test_a_run_whose_dataset_file_is_gone_fails_with_a_reason_and_only_its_owner_sees_the_traceback(
    transactional_db: None, alice: User, tiny_base: BaseModel, ray_head: Any, settings: Any, tmp_path: Path
) -> None:
    from tests.worker.fixtures import _stop, start_worker
    from webapp.accounts.models import Membership, Team
    from webapp.datasets.models import Dataset

    bob = User.objects.create_user("bob", "bob@example.com", "correct-horse-battery-9")
    lab = Team.objects.create(name="Lab", slug="lab")
    Membership.objects.create(team=lab, user=alice, role=Membership.Role.OWNER)
    Membership.objects.create(team=lab, user=bob, role=Membership.Role.MEMBER)
    prompts: Dataset = make_prompts(alice, team=lab, rows=8)
    tool = tool_create(user=alice, team=lab, name="python", kind="python")
    clients = {}
    for user in (alice, bob):
        clients[user.username] = APIClient()
        _, token = ApiToken.objects.create(user=user, name="test", expiry=None)
        clients[user.username].credentials(HTTP_AUTHORIZATION=f"Token {token}")
    body = {"name": "doomed", "base_model": tiny_base.slug, "dataset": prompts.pk, "tools": [tool.pk], "team": "lab",
            "overrides": {"rollout.sampler": "transformers", "rollout.group_size": 2, "rollout.initial_samples": 1,
                          "train.steps": 1}}  # fmt: skip
    run_id = clients["alice"].post("/api/v1/runs/", body, format="json").json()["id"]
    assert clients["alice"].post(f"/api/v1/runs/{run_id}/launch/").status_code == 202
    train_file = prompts.train_path()
    assert train_file is not None
    train_file.unlink()  # gone after the launch's check, before any worker picks the run up

    extra = {**ray_head.env, "ARPO_RUN_NUM_CPUS": "0"}
    worker = start_worker("runs", settings, tmp_path / "runs-worker.log", extra, purge=False)
    try:
        wait_for(lambda: status_of(run_id) in TERMINAL, 240, worker, "the run's end")
    finally:
        _stop(worker.process)
    run = Run.objects.get(pk=run_id)
    assert run.status == "failed"
    assert "A file the run needs is gone" in run.status_reason and "upload the dataset again" in run.status_reason
    assert str(settings.MEDIA_ROOT) not in run.status_reason  # no server path in what people read
    owner_view = clients["alice"].get(f"/api/v1/runs/{run_id}/events/").json()
    teammate_view = clients["bob"].get(f"/api/v1/runs/{run_id}/events/").json()
    tracebacks = [e for e in owner_view if e["private"]]
    assert tracebacks and "Traceback (most recent call last)" in tracebacks[0]["data"]["line"]
    assert not [e for e in teammate_view if e["private"]]
    assert {e["seq"] for e in teammate_view} == {e["seq"] for e in owner_view} - {e["seq"] for e in tracebacks}


def test_a_cancelled_run_resumed_by_its_owner_continues_from_its_checkpoint_to_the_configured_steps(
    runs_worker: CeleryWorker, api: APIClient, create_run: Callable[..., int]
) -> None:
    run_id = create_run("resumable", steps=6)
    assert api.post(f"/api/v1/runs/{run_id}/launch/").status_code == 202
    wait_for(lambda: MetricPoint.objects.filter(run_id=run_id).exists(), 180, runs_worker, "a first step")
    assert api.post(f"/api/v1/runs/{run_id}/cancel/").status_code == 202
    wait_for(lambda: status_of(run_id) in TERMINAL, 120, runs_worker, "the cancelled run's end")
    stopped = Run.objects.get(pk=run_id)
    assert stopped.status == "cancelled" and 1 <= stopped.steps_done < 6, (stopped.status, stopped.steps_done)

    response = api.post(f"/api/v1/runs/{run_id}/resume/")
    assert response.status_code == 202, response.json()
    wait_for(lambda: status_of(run_id) in TERMINAL, 240, runs_worker, "the resumed run's end")
    run = Run.objects.get(pk=run_id)
    assert run.status == "succeeded", (run.status_reason, runs_worker.log()[-3000:])
    assert run.steps_done == 6
    # Same run id, every step once: the resumed part did not redo a step the first part recorded.
    assert list(MetricPoint.objects.filter(run=run).order_by("step").values_list("step", flat=True)) == list(range(1, 7))
    seqs = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    metric_steps = sorted(e.step for e in RunEvent.objects.filter(run=run, kind="metrics") if e.step is not None)
    assert metric_steps == list(range(1, 7))  # a restart from scratch would emit the early steps twice
    assert any("resuming from" in str(e.data) for e in RunEvent.objects.filter(run=run, kind="log"))
