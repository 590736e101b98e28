"""The dashboard's pages: the live run page's embedded config, the run list's live rows and filters, and
the compare view (scoped: one run the viewer may not see makes the whole page a 404)."""

from __future__ import annotations

import json
import re
from typing import Any

from django.contrib.auth.models import User
from django.test import Client, TestCase
from django.urls import reverse

from tests.webapp import factories as make
from webapp.accounts.models import Team
from webapp.runs import recording
from webapp.runs.models import Run


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _launched(user: User, team: Team | None = None, *, name: str = "", steps: int = 0, **columns: list[Any]) -> Run:
    """A run that ran `steps` steps: its events recorded through the relay's service."""
    run = make.run(user, team=team, name=name)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING)
    events = [
        {"seq": s, "kind": "metrics", "step": s, "data": {k: v[s - 1] for k, v in columns.items()}}
        for s in range(1, steps + 1)
    ]
    events.append({"seq": steps + 1, "kind": "log", "data": {"line": "Traceback: secret", "level": "error"},
                   "private": True})  # fmt: skip
    events.append({"seq": steps + 2, "kind": "rollout", "step": steps,
                   "data": {"prompt_index": 0, "reward_mean": 0.5, "paths": []}})  # fmt: skip
    with TestCase.captureOnCommitCallbacks(execute=False):
        recording.run_events_record(run_id=run.pk, events=events)
    run.refresh_from_db()
    return run


def _config(html: str, element_id: str) -> dict[str, Any]:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    assert match, f"no #{element_id} on the page"
    return dict(json.loads(match.group(1)))


def test_the_run_page_of_a_launched_run_embeds_its_history_for_the_front_end(alice: User) -> None:
    run = _launched(alice, steps=3, **{"reward/mean": [0.1, 0.2, 0.3]})
    html = _client(alice).get(reverse("runs:detail", args=[run.pk])).content.decode()
    config = _config(html, "run-page-config")
    assert config["ws_url"] == f"/ws/runs/{run.pk}/"
    assert [p["step"] for p in config["history"]["metrics"]] == [1, 2, 3]
    assert config["history"]["last_seq"] == 5
    assert config["history"]["trees"][0]["data"] == {"prompt_index": 0, "reward_mean": 0.5, "truncated": None}
    assert config["tree_url"] == f"/api/v1/runs/{run.pk}/rollouts/?step={{step}}"
    assert "dist/run_page.js" in html and "data-run-charts" in html and "data-run-trees" in html


def test_the_run_page_shows_a_private_log_line_to_the_owner_only(alice: User, bob: User, lab: Team) -> None:
    run = _launched(alice, lab, steps=1, **{"reward/mean": [0.1]})
    assert "Traceback: secret" in _client(alice).get(reverse("runs:detail", args=[run.pk])).content.decode()
    page = _client(bob).get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert "Traceback: secret" not in page
    assert _config(page, "run-page-config")["history"]["last_seq"] == 3  # the rollout after the private line


def test_the_page_head_alone_is_what_the_run_page_shows_for_the_runs_state(
    alice: User, bob: User, lab: Team, charlie: User
) -> None:
    run = _launched(alice, lab, steps=2, **{"reward/mean": [0.1, 0.2]})
    head_url = reverse("runs:head", args=[run.pk])
    page = _client(alice).get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert _config(page, "run-page-config")["head_url"] == head_url

    response = _client(alice).get(head_url)
    head = response.content.decode()
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert head.count("data-run-head") == 1 and 'data-status="running"' in head and "<html" not in head
    assert "{#" not in head and "{%" not in head and "{#" not in page  # no template syntax shown as text
    assert "Cancel run" in head and "step 2 of" in head

    Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED)
    head = _client(bob).get(head_url).content.decode()  # a team member sees the same head
    assert 'data-status="succeeded"' in head and "Succeeded" in head and "Cancel run" not in head
    assert _client(charlie).get(head_url).status_code == 404  # outside the team: no such run
    anonymous = Client().get(head_url)
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


def test_a_draft_run_page_has_no_dashboard(alice: User) -> None:
    run = make.run(alice)
    html = _client(alice).get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert "run-page-config" not in html and "dist/run_page.js" not in html


def test_the_run_list_shows_progress_key_metrics_and_the_reward_sparkline(alice: User) -> None:
    run = _launched(alice, name="watched", steps=3, **{"reward/mean": [0.1, 0.2, 0.3], "accuracy": [0.5] * 3})
    Run.objects.filter(pk=run.pk).update(config={**run.config, "train": {**run.config["train"], "steps": 6}})
    html = _client(alice).get(reverse("runs:list")).content.decode()
    row = html[html.index(f'data-run-row="{run.pk}"') :]
    assert "3 / 6" in row and 'aria-valuenow="50"' in row
    assert 'data-sparkline="[0.1,0.2,0.3]"' in row
    assert 'data-metric="accuracy"' in row and "50%" in row
    assert "run_list_live.js" in html


def test_the_run_list_shows_an_alert_with_what_to_try(alice: User) -> None:
    _launched(alice, steps=10, **{"tools/calls_total": [0.0] * 10})
    html = _client(alice).get(reverse("runs:list")).content.decode()
    assert "No tool call in the last 10 steps" in html and "SFT demonstrations" in html


def test_the_run_list_filters_by_owner(alice: User, bob: User, lab: Team) -> None:
    make.run(alice, team=lab, name="alices team run")
    make.run(bob, team=lab, name="bobs team run")
    html = _client(alice).get(reverse("runs:list"), {"owner": "bob"}).content.decode()
    assert "bobs team run" in html and "alices team run" not in html
    assert '<option value="bob"' in html


def test_compare_overlays_the_runs_the_viewer_may_see(alice: User, bob: User, lab: Team) -> None:
    arpo = _launched(alice, lab, name="arpo", steps=2, **{"eval/accuracy": [0.2, 0.4]})
    grpo = _launched(alice, lab, name="grpo", steps=2, **{"eval/accuracy": [0.1, 0.3]})
    response = _client(bob).get(reverse("runs:compare"), {"ids": f"{arpo.pk},{grpo.pk}"})
    config = _config(response.content.decode(), "compare-config")
    assert [r["id"] for r in config["runs"]] == [arpo.pk, grpo.pk]
    assert config["runs"][0]["metrics"][1] == {"step": 2, "values": {"eval/accuracy": 0.4}}
    assert "dist/compare.js" in response.content.decode()


def test_compare_takes_repeated_ids_from_the_chooser_form(alice: User) -> None:
    a, b = _launched(alice, name="a"), _launched(alice, name="b")
    response = _client(alice).get(f"{reverse('runs:compare')}?ids={a.pk}&ids={b.pk}")
    assert [r["id"] for r in _config(response.content.decode(), "compare-config")["runs"]] == [a.pk, b.pk]


def test_compare_with_a_run_the_viewer_may_not_see_is_a_404(alice: User, charlie: User) -> None:
    mine, theirs = _launched(charlie, name="mine"), _launched(alice, name="alices secret")
    response = _client(charlie).get(reverse("runs:compare"), {"ids": f"{mine.pk},{theirs.pk}"})
    assert response.status_code == 404 and "alices secret" not in response.content.decode()


def test_compare_with_junk_ids_is_a_404(alice: User) -> None:
    assert _client(alice).get(reverse("runs:compare"), {"ids": "1,x"}).status_code == 404


def test_compare_without_two_runs_offers_a_chooser(alice: User) -> None:
    run = _launched(alice, name="pick me")
    html = _client(alice).get(reverse("runs:compare"), {"ids": str(run.pk)}).content.decode()
    assert "Choose two or more runs" in html and f'value="{run.pk}"' in html and "checked" in html
