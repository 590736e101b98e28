"""The compute-used page (`/runs/usage/`): the caller's runs and their teams' totals (usage.py)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from .usage import usage_summary


@login_required
@require_GET
def usage_page(request: HttpRequest) -> HttpResponse:
    return render(request, "runs/usage.html", {"summary": usage_summary(user=request.user)})
