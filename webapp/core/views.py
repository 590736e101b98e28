"""Pages that belong to no domain: home, health check, and error pages (JSON under /api/)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render

from .api import error_body


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("runs:list")


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(error_body("Not found.", "not_found"), status=404)
    return render(request, "core/error.html", {"title": "Not found", "message": "There is nothing here."}, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(error_body("Something went wrong on our side.", "server_error"), status=500)
    return render(
        request,
        "core/error.html",
        {"title": "Something went wrong", "message": "The error was logged. Try again in a moment."},
        status=500,
    )
