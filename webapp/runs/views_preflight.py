"""Pages' preflight "Check" and "Compare with GRPO" actions (POST forms on the run's page), and the check's
panel on that page: it polls the check's JSON while the worker runs it and refreshes without JavaScript."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from webapp.core.errors import DomainError, NotFound

from . import preflight, selectors, twins
from .models import Preflight, Run


def _run(request: HttpRequest, pk: int) -> Run:
    try:
        return selectors.run_get(user=request.user, run_id=pk)
    except NotFound:
        raise Http404("No such run.") from None


@login_required
@require_POST
def run_check(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run(request, pk)
    try:
        found = preflight.run_preflight_start(user=request.user, run=run)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("runs:detail", pk)
    messages.info(request, "Checking on the worker: a few rollouts of the starting model (a minute or two).")
    return redirect(f"{reverse('runs:detail', args=[pk])}?check={found.pk}#check")


@login_required
@require_POST
def run_grpo_twin(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run(request, pk)
    was_draft = run.is_draft
    try:
        twin = twins.run_grpo_twin(user=request.user, run=run)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("runs:detail", pk)
    if twin.is_draft:
        messages.warning(request, f"Created the GRPO twin {twin.name} as a draft: the pair was not launchable.")
    elif was_draft:
        messages.success(request, f"Created the GRPO twin {twin.name} and launched the pair.")
    else:
        messages.success(request, f"Created the GRPO twin {twin.name} and launched it; {run.name} ran already.")
    return redirect("runs:detail", twin.pk)


def _percent(value: Any) -> str:
    return "–" if value is None else f"{float(value):.0%}"


def _number(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


def preflight_stats(found: Preflight) -> list[dict[str, str]]:
    """The panel's numbers, labelled, from the check's metrics."""
    m = (found.results or {}).get("metrics") or {}
    return [
        {"label": "Tool-call rate", "value": _percent(m.get("tools/call_rate")), "help": "paths with a tool call"},
        {"label": "Format valid", "value": _percent(m.get("format/ok_frac")), "help": "paths in the scorer's format"},
        {"label": "Reward", "value": f"{_number(m.get('reward/mean'))} ± {_number(m.get('reward/std'))}",
         "help": "mean ± spread over every path"},
        {"label": "Degenerate groups", "value": _percent(m.get("groups/degenerate_frac")),
         "help": "prompts whose paths all got one reward (no signal)"},
        {"label": "Mean length", "value": _number(m.get("response/len_mean"), 0), "help": "response tokens per path"},
        {"label": "Clipped", "value": _percent(m.get("response/clip_frac")), "help": "paths cut by the budget"},
    ]  # fmt: skip


def preflight_context(request: HttpRequest, run: Run) -> dict[str, Any]:
    """What the run page needs for its check panel."""
    found = None
    wanted = request.GET.get("check")
    if wanted:
        try:
            found = preflight.preflight_get(run=run, preflight_id=wanted)
        except NotFound:
            found = None
    found = found or preflight.latest_preflight(run)
    return {
        "preflight": found,
        "preflight_api": reverse("api-run-preflight-detail", args=[run.pk, found.pk]) if found else "",
        "preflight_stats": preflight_stats(found) if found and found.status == Preflight.Status.DONE else [],
    }
