"""Pages of a run's checkpoints: the list (step, metrics, size, `latest`/`best`) and the streamed download
of one step (`/runs/<id>/checkpoints/<step|latest|best>/download`), for people who may see the run."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from webapp.core.errors import NotFound

from . import checkpoints, selectors
from .api_checkpoints import streamed_archive
from .models import Run


def _run(request: HttpRequest, pk: int) -> Run:
    try:
        return selectors.run_get(user=request.user, run_id=pk)
    except NotFound:
        raise Http404("No such run.") from None


@login_required
@require_GET
def run_checkpoints(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run(request, pk)
    rows = list(reversed(checkpoints.checkpoint_rows(run=run)))
    return render(request, "runs/checkpoints.html", {"run": run, "rows": rows})


@login_required
@require_GET
def checkpoint_download(request: HttpRequest, pk: int, ref: str) -> StreamingHttpResponse:
    run = _run(request, pk)
    try:
        stream, filename = checkpoints.checkpoint_download(run=run, ref=ref)
    except NotFound as exc:
        raise Http404(exc.message) from None
    return streamed_archive(stream, filename)
