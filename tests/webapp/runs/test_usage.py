"""Compute used: per-attempt reports summed on the run (a repeated report counts once), totals per user
(the runs they created) and per team (split by who created them), in the API, the page and a run's state."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.test import Client

from tests.webapp import factories as make
from webapp.accounts.models import Team
from webapp.runs import lifecycle
from webapp.runs.models import Run
from webapp.runs.usage import run_usage_record


def _used(run: Run, attempt: int, wall: float, cpu: float, gpus: float = 0.0) -> Run:
    usage = {"attempt": attempt, "wall_s": wall, "cpu_s": cpu, "gpu_s": gpus * wall, "cpus": 1.0, "gpus": gpus}
    return run_usage_record(run_id=run.pk, usage=usage)


def _launched(user: User, team: Team | None = None) -> Run:
    return lifecycle.run_launch(user=user, run=make.run(user, team=team))


def test_a_runs_totals_sum_its_attempts_and_a_repeated_report_replaces_its_attempts(alice: User) -> None:
    run = _launched(alice)
    _used(run, 1, wall=10, cpu=15, gpus=1)
    _used(run, 1, wall=20, cpu=30, gpus=1)  # the same attempt, reported later: replaces, never adds
    run = _used(run, 2, wall=5, cpu=4, gpus=1)  # resumed: a second actor
    assert (run.wall_seconds, run.cpu_seconds, run.gpu_seconds) == (25, 34, 25)
    assert set(run.usage) == {"1", "2"}


def test_usage_totals_per_user_and_per_team_split_by_who_created_the_runs(
    alice: User, bob: User, charlie: User, lab: Team, api_for: Any
) -> None:
    _used(_launched(alice), 1, wall=100, cpu=150)  # alice, personal
    _used(_launched(alice, lab), 1, wall=10, cpu=20, gpus=1)  # alice, for the team
    _used(_launched(bob, lab), 1, wall=40, cpu=40)  # bob, for the team
    make.run(bob, team=lab)  # a draft: counts no run and no compute
    mine = api_for(alice).get("/api/v1/usage/").json()
    assert mine["user"] == {"username": "alice", "runs": 2, "wall_seconds": 110, "cpu_seconds": 170, "gpu_seconds": 10}
    (team,) = mine["teams"]
    assert (team["slug"], team["runs"], team["wall_seconds"], team["gpu_seconds"]) == ("lab", 2, 50, 10)
    assert [(m["username"], m["runs"], m["wall_seconds"]) for m in team["members"]] == [
        ("alice", 1, 10),
        ("bob", 1, 40),
    ]
    assert api_for(bob).get("/api/v1/usage/").json()["user"]["wall_seconds"] == 40
    outsider = api_for(charlie).get("/api/v1/usage/").json()
    assert outsider == {"user": {"username": "charlie", "runs": 0, "wall_seconds": 0, "cpu_seconds": 0,
                                 "gpu_seconds": 0}, "teams": []}  # fmt: skip


def test_the_usage_page_and_the_runs_state_show_the_compute(alice: User, lab: Team, api_for: Any) -> None:
    run = _used(_launched(alice, lab), 1, wall=3600, cpu=5400, gpus=2)
    state = api_for(alice).get(f"/api/v1/runs/{run.pk}/state/").json()
    assert (state["wall_seconds"], state["cpu_seconds"], state["gpu_seconds"]) == (3600, 5400, 7200)
    client = Client()
    client.force_login(alice)
    page = client.get("/runs/usage/").content.decode()
    assert "Team Lab" in page and "7200" in page and "5400" in page
    assert "compute 3600 s wall" in client.get(f"/runs/{run.pk}/").content.decode()
