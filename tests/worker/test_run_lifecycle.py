"""Launch, cancel, the run lease and event recording, on PostgreSQL without a worker (the real-stack proofs
are in tests/e2e/test_run_execute.py)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from tests.webapp.runs.conftest import make_prompts
from webapp.core.errors import DomainError
from webapp.runs import leases, lifecycle, recording, selectors
from webapp.runs.models import MetricPoint, RolloutTree, Run, RunEvent, RunLease
from webapp.runs.services import run_create

PASSWORD = "correct-horse-battery-9"


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return settings.MEDIA_ROOT


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", "alice@example.com", PASSWORD)


@pytest.fixture
def draft(alice: User) -> Run:
    run = run_create(user=alice, name="r", preset="arpo_paper", base_model="smollm2-135m",
                     dataset=make_prompts(alice, rows=8), overrides={"train.steps": 2})  # fmt: skip
    assert run.launchable, run.errors
    return run


def event(seq: int, kind: str, step: int | None = None, **data: Any) -> dict[str, Any]:
    return {"seq": seq, "kind": kind, "step": step, "data": data, "at": time.time()}


def test_launch_queues_a_draft_and_enqueues_run_execute_only_after_commit(
    alice: User, draft: Run, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = lifecycle.run_launch(user=alice, run=draft)
    assert run.status == "queued" and run.launched_at is not None
    assert len(callbacks) == 1  # the enqueue waits for the commit


def test_a_run_that_is_not_a_draft_cannot_be_launched_again(alice: User, draft: Run) -> None:
    Run.objects.filter(pk=draft.pk).update(status=Run.Status.RUNNING)
    with pytest.raises(DomainError) as caught:
        lifecycle.run_launch(user=alice, run=draft)
    assert caught.value.code == "not_draft"


def test_cancelling_a_queued_run_that_no_worker_holds_cancels_it_at_once(alice: User, draft: Run) -> None:
    Run.objects.filter(pk=draft.pk).update(status=Run.Status.QUEUED)
    run = lifecycle.run_cancel(user=alice, run=draft)
    assert run.status == "cancelled" and run.stop_requested


def test_cancelling_a_leased_run_asks_the_engine_to_stop(alice: User, draft: Run) -> None:
    Run.objects.filter(pk=draft.pk).update(status=Run.Status.RUNNING)
    assert leases.lease_acquire(run_id=draft.pk, holder="w1", ttl_s=30) is not None
    run = lifecycle.run_cancel(user=alice, run=draft)
    assert run.status == "cancelling" and run.stop_requested


def test_a_second_holder_gets_no_lease_while_the_first_is_live(draft: Run) -> None:
    assert leases.lease_acquire(run_id=draft.pk, holder="w1", ttl_s=30) is not None
    assert leases.lease_acquire(run_id=draft.pk, holder="w2", ttl_s=30) is None


def test_an_expired_lease_is_taken_over_and_both_stay_in_the_history(draft: Run) -> None:
    first = leases.lease_acquire(run_id=draft.pk, holder="w1", ttl_s=30)
    assert first is not None
    RunLease.objects.filter(pk=first.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    second = leases.lease_acquire(run_id=draft.pk, holder="w2", ttl_s=30)
    assert second is not None
    history = list(selectors.lease_history(run=draft))
    assert [lease.holder for lease in history] == ["w1", "w2"]
    assert history[0].outcome == "expired" and history[0].released_at is not None
    assert not leases.lease_heartbeat(lease=first, ttl_s=30)  # the old holder learns it lost the run


def test_a_slow_holder_keeps_its_expired_lease_when_nobody_took_it_over(draft: Run) -> None:
    lease = leases.lease_acquire(run_id=draft.pk, holder="w1", ttl_s=30)
    assert lease is not None
    RunLease.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert leases.lease_heartbeat(lease=lease, ttl_s=30)
    assert leases.lease_acquire(run_id=draft.pk, holder="w2", ttl_s=30) is None


def test_recording_the_same_events_twice_stores_each_once(draft: Run) -> None:
    batch = [
        event(1, "status", status="running"),
        event(2, "rollout", 1, prompt_index=0, reward_mean=0.5, paths=[{"id": 0}]),
        event(3, "metrics", 1, **{"reward/mean": 0.5}),
    ]
    assert recording.run_events_record(run_id=draft.pk, events=batch) == 3
    assert recording.run_events_record(run_id=draft.pk, events=batch) == 0
    run = Run.objects.get(pk=draft.pk)
    assert run.last_seq == 3 and run.steps_done == 1 and run.status == "draft"
    assert RunEvent.objects.filter(run=run).count() == 3
    assert MetricPoint.objects.filter(run=run).count() == 1 and RolloutTree.objects.filter(run=run).count() == 1


def test_a_step_redone_after_a_resume_replaces_its_metric_point(draft: Run) -> None:
    recording.run_events_record(run_id=draft.pk, events=[event(1, "metrics", 1, **{"reward/mean": 0.1})])
    recording.run_events_record(run_id=draft.pk, events=[event(2, "metrics", 1, **{"reward/mean": 0.2})])
    points = list(MetricPoint.objects.filter(run=draft))
    assert len(points) == 1 and points[0].values == {"reward/mean": 0.2} and points[0].seq == 2


def test_an_engine_stop_nobody_asked_for_is_a_failure_not_a_cancel(draft: Run) -> None:
    Run.objects.filter(pk=draft.pk).update(status=Run.Status.RUNNING)
    recording.run_events_record(run_id=draft.pk, events=[event(1, "status", status="cancelled", reason="stopped")])
    assert Run.objects.get(pk=draft.pk).status == "failed"


def test_the_run_page_launches_a_draft_with_a_plain_form(
    alice: User, draft: Run, django_capture_on_commit_callbacks: Any
) -> None:
    client = Client()
    client.force_login(alice)
    page = client.get(f"/runs/{draft.pk}/")
    assert f'action="/runs/{draft.pk}/launch/"' in page.content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(f"/runs/{draft.pk}/launch/")
    assert response.status_code == 302
    assert Run.objects.get(pk=draft.pk).status == "queued"
