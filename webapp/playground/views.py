"""Pages of the playground: the question box on a checkpoint, and a session's two answers side by side.

The form works without JavaScript (POST, then a redirect to the session's page); the answers stream in
through the session's websocket (frontend src/playground.ts), from the history embedded in the page.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from webapp.core.errors import DomainError, NotFound
from webapp.runs import checkpoints
from webapp.runs import selectors as run_selectors
from webapp.runs.models import Checkpoint, Run

from . import live, selectors, services
from .models import PlaygroundSession


def _context(
    request: HttpRequest, run: Run, checkpoint: Checkpoint, session: PlaygroundSession | None, question: str = ""
) -> dict[str, Any]:
    active = selectors.active_session_of(request.user)
    sides = [
        {"key": "trained", "title": "Trained agent", "model": f"Step {checkpoint.step} of {run.name}"},
        {"key": "base", "title": "Base model", "model": run.base_model.display_name},
    ]
    for side in sides:
        side["state"] = session.sides.get(side["key"], "") if session else "idle"
    return {
        "nav_section": "runs",
        "run": run,
        "checkpoint": checkpoint,
        "session": session,
        "question": question,
        "max_chars": services.QUESTION_MAX_CHARS,
        "examples": selectors.example_questions(run),
        "recent": selectors.recent_sessions(user=request.user, run=run),
        "busy": active if active is not None and active != session else None,
        "sides": sides,
        "config": live.page_config(session),
    }


@login_required
@require_http_methods(["GET", "POST"])
def playground_start(request: HttpRequest, pk: int, ref: str) -> HttpResponse:
    try:
        run = run_selectors.run_get(user=request.user, run_id=pk)
        checkpoint = checkpoints.checkpoint_for(run=run, ref=ref)
    except NotFound as exc:
        raise Http404(exc.message) from None
    question = request.GET.get("q", "")
    if request.method == "POST":
        question = str(request.POST.get("question", ""))
        try:
            session = services.session_start(user=request.user, run=run, ref=str(checkpoint.step), question=question)
        except DomainError as exc:
            messages.error(request, exc.message)
            context = _context(request, run, checkpoint, None, question)
            return render(request, "playground/page.html", context, status=exc.status)
        return redirect("playground:session", session_id=session.pk)
    return render(request, "playground/page.html", _context(request, run, checkpoint, None, question))


@login_required
@require_GET
def playground_session(request: HttpRequest, session_id: int) -> HttpResponse:
    try:
        session = selectors.session_get(user=request.user, session_id=session_id)
    except NotFound:
        raise Http404("No such session.") from None
    context = _context(request, session.run, session.checkpoint, session, session.question)
    return render(request, "playground/page.html", context)
