"""Pages of the tools app: list, define (per kind), detail with "try it", edit, delete.

"Try it" posts here, is queued for the worker, and the detail page shows the trial: a small script
polls the trial's API endpoint; without JavaScript the page refreshes itself until the trial ends.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from webapp.core.errors import DomainError, NotFound

from . import selectors, services
from .forms import ToolForm, TryForm
from .models import Tool

TRIAL_STALLED_S = 20
"""A "try it" call still queued after this long most likely has no worker on the short queue to run it."""


def _tool(request: HttpRequest, pk: int) -> Tool:
    try:
        return selectors.tool_get(user=request.user, tool_id=pk)
    except NotFound:
        raise Http404("No such tool.") from None


def _show_errors(form: Any, exc: DomainError) -> None:
    for field, problems in (exc.fields or {"": [exc.message]}).items():
        for problem in problems:
            form.add_error(field if field in form.fields else None, problem)


@login_required
def tool_list(request: HttpRequest) -> HttpResponse:
    tools = selectors.tool_list(user=request.user)
    return render(request, "tools/list.html", {"tools": tools, "kinds": Tool.Kind.choices})


@login_required
def tool_create(request: HttpRequest) -> HttpResponse:
    kind = request.GET.get("kind", "python")
    if kind not in Tool.Kind.values:
        kind = "python"
    form = ToolForm(request.POST or None, user=request.user, kind=kind, initial=ToolForm.initial_for(kind))
    if request.method == "POST" and form.is_valid():
        data = form.service_kwargs()
        try:
            tool = services.tool_create(user=request.user, kind=kind, **data)
        except DomainError as exc:
            _show_errors(form, exc)
        else:
            messages.success(request, f"Tool {tool.name} defined. Try it below.")
            return redirect("tools:detail", pk=tool.pk)
    return render(request, "tools/form.html", {"form": form, "kind": kind, "kinds": Tool.Kind.choices, "tool": None})


@login_required
def tool_edit(request: HttpRequest, pk: int) -> HttpResponse:
    tool = _tool(request, pk)
    initial = ToolForm.initial_for(tool.kind, tool)
    form = ToolForm(request.POST or None, user=request.user, kind=tool.kind, tool=tool, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.tool_update(user=request.user, tool=tool, **form.service_kwargs())
        except DomainError as exc:
            _show_errors(form, exc)
        else:
            messages.success(request, "Saved.")
            return redirect("tools:detail", pk=tool.pk)
    return render(request, "tools/form.html", {"form": form, "kind": tool.kind, "tool": tool})


@login_required
def tool_detail(request: HttpRequest, pk: int, try_form: TryForm | None = None) -> HttpResponse:
    tool = _tool(request, pk)
    trial = None
    if request.GET.get("trial"):
        try:
            trial = selectors.tool_trial_get(user=request.user, tool_id=tool.pk, trial_id=request.GET["trial"])
        except NotFound:
            trial = None
    if try_form is None:
        initial = trial.arguments if trial is not None else None
        arguments = json.dumps(initial, indent=2) if initial else TryForm.initial_for(tool)
        try_form = TryForm(initial={"arguments": arguments})
    context = {
        "tool": tool,
        "try_form": try_form,
        "trial": trial,
        "trial_api": reverse("api-tool-trial", args=[tool.pk, trial.pk]) if trial else "",
        # Queued for longer than a worker takes to pick a call up: say what is probably wrong.
        "trial_stalled": trial is not None
        and trial.status == trial.Status.QUEUED
        and (timezone.now() - trial.created_at).total_seconds() > TRIAL_STALLED_S,
        "trial_stalled_s": TRIAL_STALLED_S,
        # The trial shown above updates live; listing it again below would show a stale status.
        "recent": [t for t in selectors.tool_trials_recent(tool=tool) if trial is None or t.pk != trial.pk],
        "schema_json": json.dumps(tool.schema, indent=2),
    }
    return render(request, "tools/detail.html", context, status=400 if try_form.errors else 200)


@login_required
@require_POST
def tool_try(request: HttpRequest, pk: int) -> HttpResponse:
    tool = _tool(request, pk)
    form = TryForm(request.POST)
    if form.is_valid():
        try:
            trial = services.tool_trial_create(user=request.user, tool=tool, arguments=form.cleaned_data["arguments"])
        except DomainError as exc:
            _show_errors(form, exc)
        else:
            return redirect(f"{reverse('tools:detail', args=[tool.pk])}?trial={trial.pk}#try")
    return tool_detail(request, pk, try_form=form)


@login_required
def tool_delete(request: HttpRequest, pk: int) -> HttpResponse:
    tool = _tool(request, pk)
    if request.method == "POST":
        try:
            services.tool_delete(user=request.user, tool=tool)
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("tools:detail", pk=tool.pk)
        messages.success(request, f"Tool {tool.name} deleted.")
        return redirect("tools:list")
    return render(request, "tools/delete.html", {"tool": tool})
