"""`{% run_live run as live %}`: the live run page's config (JSON for the front end) and its links.

A tag rather than view context so that every page showing a run's dashboard (the run page today) gets
the same data from one place: webapp/runs/live.py.
"""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.urls import reverse

from webapp.runs import live
from webapp.runs.models import Run

register = template.Library()


@register.simple_tag(takes_context=True)
def run_live(context: template.Context, run: Run) -> dict[str, Any]:
    user = context["request"].user
    return {"config": live.page_config(user=user, run=run), "compare_url": compare_url(run)}


def compare_url(run: Run) -> str | None:
    """The compare view of this run and its GRPO twin (or the run it is the twin of), when there is one."""
    if run.twin_of_id:
        ids = [run.twin_of_id, run.pk]
    else:
        twin = run.twins.exclude(status=Run.Status.DRAFT).order_by("pk").values_list("pk", flat=True).first()
        if twin is None:
            return None
        ids = [run.pk, twin]
    return f"{reverse('runs:compare')}?ids={','.join(map(str, ids))}"


@register.filter
def as_json(value: Any) -> str:
    """A value as JSON for a data-* attribute (autoescaping then quotes it safely)."""
    return json.dumps(value, separators=(",", ":"))
