"""Preflight "Check" (queued on the worker), "Compare with GRPO" (the twin) and clone with changes: web side.

The worker's side of the check is tested through a real worker in tests/worker/test_preflight.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from django.test import Client, TestCase

from arpo_engine import config_meta
from webapp.runs import lifecycle
from webapp.runs.models import Preflight, Run
from webapp.runs.services import run_create, run_update

pytestmark = pytest.mark.django_db


def _run(user: Any, prompts: Any, tools: Sequence[Any] = (), *, extra: dict[str, Any] | None = None) -> Run:
    return run_create(
        user=user, name="arpo", preset="arpo_paper", base_model="smollm2-135m", dataset=prompts,
        tools=[t.pk for t in tools],
        overrides={"seed": 7, "rollout.group_size": 8, "rollout.initial_samples": 4, "train.steps": 5,
                   "optim.lr": 3e-6, "rollout.max_response_tokens": 512, **(extra or {})},
    )  # fmt: skip


def _page(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- preflight ---------------------------------------------------------------------------------------


def test_check_answers_202_with_a_queued_check_and_sends_the_task(
    api_for: Any, alice: Any, small_model: Any, prompts: Any, demo_tools: Any
) -> None:
    run = _run(alice, prompts, demo_tools)
    with TestCase.captureOnCommitCallbacks() as callbacks:
        response = api_for(alice).post(f"/api/v1/runs/{run.pk}/preflight/")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["run"] == run.pk
    assert len(callbacks) == 1  # run_preflight.delay, once the row is committed
    got = api_for(alice).get(f"/api/v1/runs/{run.pk}/preflight/{body['id']}/")
    assert got.status_code == 200 and got.json()["id"] == body["id"]


def test_a_second_check_while_one_is_pending_returns_the_pending_one(
    api_for: Any, alice: Any, small_model: Any, prompts: Any
) -> None:
    run = _run(alice, prompts)
    first = api_for(alice).post(f"/api/v1/runs/{run.pk}/preflight/").json()
    second = api_for(alice).post(f"/api/v1/runs/{run.pk}/preflight/").json()
    assert first["id"] == second["id"] and Preflight.objects.filter(run=run).count() == 1


def test_a_draft_with_problems_cannot_be_checked(api_for: Any, alice: Any, small_model: Any, prompts: Any) -> None:
    run = _run(alice, prompts, extra={"rollout.initial_samples": 16})  # N > M
    assert not run.launchable
    response = api_for(alice).post(f"/api/v1/runs/{run.pk}/preflight/")
    assert response.status_code == 409 and response.json()["code"] == "not_launchable"


def test_a_launched_run_is_not_checked(api_for: Any, alice: Any, small_model: Any, prompts: Any) -> None:
    run = lifecycle.run_launch(user=alice, run=_run(alice, prompts))
    response = api_for(alice).post(f"/api/v1/runs/{run.pk}/preflight/")
    assert response.status_code == 409 and response.json()["code"] == "not_draft"


def test_an_outsider_cannot_read_a_check(
    api_for: Any, alice: Any, charlie: Any, small_model: Any, prompts: Any
) -> None:
    run = _run(alice, prompts)
    check = api_for(alice).post(f"/api/v1/runs/{run.pk}/preflight/").json()
    assert api_for(charlie).get(f"/api/v1/runs/{run.pk}/preflight/{check['id']}/").status_code == 404


def test_a_check_of_another_run_is_not_found_under_this_run(
    api_for: Any, alice: Any, small_model: Any, prompts: Any
) -> None:
    one, other = _run(alice, prompts), _run(alice, prompts)
    check = api_for(alice).post(f"/api/v1/runs/{one.pk}/preflight/").json()
    assert api_for(alice).get(f"/api/v1/runs/{other.pk}/preflight/{check['id']}/").status_code == 404


def test_the_drafts_page_has_a_check_button_and_shows_a_pending_check_that_refreshes(
    alice: Any, small_model: Any, prompts: Any
) -> None:
    run = _run(alice, prompts)
    client = _page(alice)
    assert f'action="/runs/{run.pk}/check/"' in client.get(f"/runs/{run.pk}/").content.decode()
    response = client.post(f"/runs/{run.pk}/check/")
    check = Preflight.objects.get(run=run)
    assert response.status_code == 302 and response["Location"].endswith(f"?check={check.pk}#check")
    page = client.get(response["Location"]).content.decode()
    assert 'id="preflight"' in page and f"/api/v1/runs/{run.pk}/preflight/{check.pk}/" in page
    assert 'http-equiv="refresh"' in page and "runs/preflight.js" in page


# --- GRPO twin ---------------------------------------------------------------------------------------


def test_the_grpo_twin_keeps_data_seed_m_steps_and_lr_and_has_n_equal_m_without_branching(
    api_for: Any, alice: Any, small_model: Any, prompts: Any, demo_tools: Any
) -> None:
    run = _run(alice, prompts, demo_tools)
    response = api_for(alice).post(f"/api/v1/runs/{run.pk}/grpo-twin/")
    assert response.status_code == 201, response.json()
    twin = Run.objects.get(pk=response.json()["id"])
    assert twin.twin_of_id == run.pk and twin.cloned_from_id == run.pk and twin.preset == "grpo_baseline"
    a, b = config_meta.flatten(run.config), config_meta.flatten(twin.config)
    for key in (
        "seed",
        "rollout.group_size",
        "train.steps",
        "optim.lr",
        "data.train_path",
        "rollout.max_response_tokens",
    ):
        assert a[key] == b[key], key
    assert b["branching.enabled"] is False and b["rollout.initial_samples"] == b["rollout.group_size"] == 8
    assert [t["name"] for t in twin.config["tools"]] == [t["name"] for t in run.config["tools"]]


def test_compare_with_grpo_launches_a_launchable_draft_and_its_twin(
    api_for: Any, alice: Any, small_model: Any, prompts: Any
) -> None:
    run = _run(alice, prompts)
    with TestCase.captureOnCommitCallbacks() as callbacks:
        twin = api_for(alice).post(f"/api/v1/runs/{run.pk}/grpo-twin/").json()
    run.refresh_from_db()
    assert run.status == twin["status"] == "queued"
    assert len(callbacks) == 2  # run_execute for each


def test_a_draft_that_is_not_launchable_gets_its_twin_as_a_draft(
    api_for: Any, alice: Any, small_model: Any, prompts: Any
) -> None:
    run = _run(alice, prompts, extra={"rollout.initial_samples": 16})
    twin = api_for(alice).post(f"/api/v1/runs/{run.pk}/grpo-twin/").json()
    run.refresh_from_db()
    assert run.status == "draft" and twin["status"] == "draft" and twin["twin_of"] == run.pk


def test_a_run_with_a_twin_or_a_grpo_run_gets_no_other_twin(
    api_for: Any, alice: Any, small_model: Any, prompts: Any
) -> None:
    run = _run(alice, prompts)
    twin = api_for(alice).post(f"/api/v1/runs/{run.pk}/grpo-twin/").json()
    again = api_for(alice).post(f"/api/v1/runs/{run.pk}/grpo-twin/")
    assert again.status_code == 409 and again.json()["code"] == "twin_exists"
    of_twin = api_for(alice).post(f"/api/v1/runs/{twin['id']}/grpo-twin/")
    assert of_twin.status_code == 409 and of_twin.json()["code"] == "already_grpo"


def test_the_page_button_creates_the_twin_and_both_pages_link_the_pair(
    alice: Any, small_model: Any, prompts: Any
) -> None:
    run = _run(alice, prompts)
    client = _page(alice)
    assert "Compare with GRPO" in client.get(f"/runs/{run.pk}/").content.decode()
    response = client.post(f"/runs/{run.pk}/grpo-twin/")
    twin = Run.objects.get(twin_of=run)
    assert response.status_code == 302 and response["Location"] == f"/runs/{twin.pk}/"
    assert f'href="/runs/{run.pk}/"' in client.get(f"/runs/{twin.pk}/").content.decode()
    original_page = client.get(f"/runs/{run.pk}/").content.decode()
    assert f'href="/runs/{twin.pk}/"' in original_page and "Compare with GRPO</button>" not in original_page


def test_the_page_says_which_runs_it_launched(alice: Any, small_model: Any, prompts: Any) -> None:
    client = _page(alice)
    draft = _run(alice, prompts)
    follow = client.post(f"/runs/{draft.pk}/grpo-twin/", follow=True).content.decode()
    assert "and launched the pair" in follow
    finished = _run(alice, prompts)
    Run.objects.filter(pk=finished.pk).update(status=Run.Status.SUCCEEDED)
    follow = client.post(f"/runs/{finished.pk}/grpo-twin/", follow=True).content.decode()
    assert "and launched it;" in follow and "ran already" in follow and "the pair" not in follow
    assert Run.objects.get(twin_of=finished).status == Run.Status.QUEUED


def test_an_outsider_cannot_make_a_twin(api_for: Any, alice: Any, charlie: Any, small_model: Any, prompts: Any) -> None:
    run = _run(alice, prompts)
    assert api_for(charlie).post(f"/api/v1/runs/{run.pk}/grpo-twin/").status_code == 404
    assert not Run.objects.filter(twin_of=run).exists()


# --- clone with changes ------------------------------------------------------------------------------


def test_the_api_clones_with_changed_knobs_applied(api_for: Any, alice: Any, small_model: Any, prompts: Any) -> None:
    run = _run(alice, prompts)
    body = {"name": "more paths", "overrides": {"rollout.group_size": 12}}
    response = api_for(alice).post(f"/api/v1/runs/{run.pk}/clone/", body, format="json")
    assert response.status_code == 201, response.json()
    clone = Run.objects.get(pk=response.json()["id"])
    assert clone.name == "more paths" and clone.cloned_from_id == run.pk
    assert clone.config["rollout"]["group_size"] == 12 and clone.config["seed"] == 7


def test_the_clone_page_opens_the_form_prefilled_from_the_run_and_saves_changes(
    alice: Any, small_model: Any, prompts: Any
) -> None:
    run = run_update(user=alice, run=_run(alice, prompts), name="original")
    client = _page(alice)
    response = client.post(f"/runs/{run.pk}/clone/")
    clone = Run.objects.get(cloned_from=run)
    assert response.status_code == 302 and response["Location"] == f"/runs/{clone.pk}/edit/"
    form = client.get(response["Location"]).content.decode()
    assert 'value="original (copy)"' in form and 'value="7"' in form  # name and seed, prefilled
