"""Compute used by runs: recorded per attempt from the run's actor (worker/runner.py `usage()`, relayed by
worker/relay.py), summed on the run, and totalled per user and per team.

A run's `usage` holds one entry per attempt (a resumed run starts a new actor): wall seconds of the
engine, CPU seconds its process used, the CPUs and GPUs Ray assigned, and GPU-seconds = GPUs × wall
seconds. The totals are the sums over attempts, so a report that arrives twice counts once.

Per user: the runs the user launched (created), theirs or their teams'. Per team: the team's runs,
split by who created them; only members see a team's totals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, QuerySet, Sum

from .models import Run

TOTALS = ("wall_seconds", "cpu_seconds", "gpu_seconds")


@transaction.atomic
def run_usage_record(*, run_id: int, usage: Mapping[str, Any]) -> Run:
    """Store one attempt's report (replacing that attempt's earlier one) and recompute the run's totals."""
    run = Run.objects.select_for_update().get(pk=run_id)
    attempt = str(int(usage.get("attempt") or 0))
    entry = {key: float(usage.get(key) or 0.0) for key in ("wall_s", "cpu_s", "gpu_s", "cpus", "gpus")}
    run.usage = {**run.usage, attempt: entry}
    run.wall_seconds = sum(float(a.get("wall_s", 0.0)) for a in run.usage.values())
    run.cpu_seconds = sum(float(a.get("cpu_s", 0.0)) for a in run.usage.values())
    run.gpu_seconds = sum(float(a.get("gpu_s", 0.0)) for a in run.usage.values())
    run.save(update_fields=["usage", *TOTALS, "updated_at"])
    return run


def _totals(qs: QuerySet[Run]) -> dict[str, Any]:
    sums = qs.aggregate(
        runs=Count("pk", filter=Q(launched_at__isnull=False)), **{f: Sum(f) for f in TOTALS}
    )  # fmt: skip
    return {"runs": sums["runs"] or 0, **{f: round(float(sums[f] or 0.0), 3) for f in TOTALS}}


def usage_for_user(*, user: Any) -> dict[str, Any]:
    """The runs `user` created (personal and for their teams)."""
    return _totals(Run.objects.filter(created_by=user))


def usage_for_teams(*, user: Any) -> list[dict[str, Any]]:
    """Each of the user's teams: the totals of its runs, and the same split by who created them."""
    from webapp.accounts.selectors import teams_for

    result = []
    for team in teams_for(user=user):
        runs = Run.objects.filter(owner_team=team)
        people = (
            runs.values("created_by__username")
            .annotate(runs=Count("pk", filter=Q(launched_at__isnull=False)), **{f: Sum(f) for f in TOTALS})
            .order_by("created_by__username")
        )  # fmt: skip
        members = [
            {"username": p["created_by__username"] or "", "runs": p["runs"],
             **{f: round(float(p[f] or 0.0), 3) for f in TOTALS}}
            for p in people
        ]  # fmt: skip
        result.append({"slug": team.slug, "name": team.name, **_totals(runs), "members": members})
    return result


def usage_summary(*, user: Any) -> dict[str, Any]:
    return {"user": {"username": user.username, **usage_for_user(user=user)}, "teams": usage_for_teams(user=user)}
