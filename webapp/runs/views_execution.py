"""Pages' run actions: launch, cancel, resume (POST forms on the run's page; no JavaScript needed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from webapp.core.errors import DomainError, NotFound

from . import lifecycle, selectors


def _act(request: HttpRequest, pk: int, action: Callable[..., Any], done: str) -> HttpResponse:
    try:
        run = selectors.run_get(user=request.user, run_id=pk)
    except NotFound:
        raise Http404("No such run.") from None
    try:
        action(user=request.user, run=run)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("runs:detail", pk)


@login_required
@require_POST
def run_launch(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, lifecycle.run_launch, "Launched: the run is queued.")


@login_required
@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, lifecycle.run_cancel, "Cancelling: the run stops after its current phase.")


@login_required
@require_POST
def run_resume(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, lifecycle.run_resume, "Resuming from the last checkpoint: the run is queued.")
