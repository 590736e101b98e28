"""Dashboard pages: compare runs (`/runs/compare/?ids=1,2`). The live run page itself is the run's page
(runs/_live.html, fed by templatetags/runs_live.py); the run list's live rows come from live_list.py.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from webapp.core.errors import NotFound

from . import selectors
from .models import Run

COMPARE_MAX = 8  # runs on one compare page: beyond that the overlaid charts stop being readable


def compare_ids(request: HttpRequest) -> list[int]:
    """`?ids=1,2` or `?ids=1&ids=2` (the chooser's checkboxes), in order, without repeats; junk is a 404."""
    ids: list[int] = []
    for value in request.GET.getlist("ids"):
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit():
                raise Http404("No such run.")
            if int(part) not in ids:
                ids.append(int(part))
    return ids


def compare_config(runs: list[Run]) -> dict[str, Any]:
    """The compare page's JSON (frontend compare.ts): each run's label and metric history."""
    labels = [run.name for run in runs]  # short: the charts' legends repeat it on every series
    if len(set(labels)) < len(labels):  # same name: tell them apart by id
        labels = [f"{label} #{run.pk}" for label, run in zip(labels, runs, strict=True)]
    return {
        "runs": [
            {"id": run.pk, "label": label,
             "metrics": [{"step": p.step, "values": p.values} for p in selectors.metric_points(run=run)]}
            for run, label in zip(runs, labels, strict=True)
        ]
    }  # fmt: skip


@login_required
def run_compare(request: HttpRequest) -> HttpResponse:
    ids = compare_ids(request)
    runs = []
    for run_id in ids[:COMPARE_MAX]:
        try:
            runs.append(selectors.run_get(user=request.user, run_id=run_id))
        except NotFound:
            raise Http404("No such run.") from None  # one the viewer may not see: the whole page is a 404
    if len(runs) < 2:
        candidates = selectors.run_list(user=request.user).exclude(status=Run.Status.DRAFT)[:100]
        return render(request, "runs/compare.html", {"runs": runs, "candidates": candidates, "chosen": ids})
    context = {"runs": runs, "config": compare_config(runs), "too_many": len(ids) > COMPARE_MAX}
    return render(request, "runs/compare.html", context)
