"""Pages of the datasets app: list, upload, detail with the preview, rename, delete."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from webapp.accounts.auth import ScopedThrottle
from webapp.core.errors import DomainError, NotFound
from webapp.core.ownership import owner_for

from . import selectors, services
from .api import preview_for_request
from .forms import RenameForm, UploadForm
from .models import Dataset
from .preview import histogram_svg_bars
from .uploads import install_upload_cap, too_large_message


def _get(request: HttpRequest, pk: int) -> Dataset:
    try:
        return selectors.dataset_get(user=request.user, dataset_id=pk)
    except NotFound:
        raise Http404("No such dataset.") from None


def _show_errors(form: Any, exc: DomainError) -> None:
    for field, problems in (exc.fields or {}).items():
        if field in form.fields and field != "errors":
            for problem in problems:
                form.add_error(field, problem)
    form.add_error(None, exc.message)


@login_required
def dataset_list(request: HttpRequest) -> HttpResponse:
    kind = request.GET.get("kind") or None
    if kind not in Dataset.Kind.values:
        kind = None
    datasets = selectors.dataset_list(user=request.user, kind=kind)
    return render(request, "datasets/list.html", {"datasets": datasets, "kind": kind, "kinds": Dataset.Kind.choices})


@csrf_exempt  # the upload cap must be installed before the CSRF check reads the body; checked just below
@login_required
def dataset_upload(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        install_upload_cap(request)
    return _dataset_upload(request)


@csrf_protect
def _dataset_upload(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None, user=request.user)
    errors: list[str] = []
    error_count = 0
    status = 200
    if request.method == "POST":
        too_large = too_large_message(request)
        if too_large:
            form.add_error("file", too_large)
        throttled = _throttled(request)
        if throttled:
            form.add_error(None, throttled)
            return render(request, "datasets/upload.html", {"form": form}, status=429)
        if form.is_valid() and not too_large:
            data = form.cleaned_data
            try:
                dataset = services.dataset_create(
                    user=request.user, owner=owner_for(request.user, data["team"] or None), kind=data["kind"],
                    file=data["file"], name=data["name"], description=data["description"],
                    eval_file=data["eval_file"], eval_percent=data["eval_percent"], split_seed=data["split_seed"] or 0,
                )  # fmt: skip
            except DomainError as exc:
                _show_errors(form, exc)
                errors = list(getattr(exc, "errors", []))
                error_count = getattr(exc, "error_count", len(errors))
            else:
                messages.success(request, f"Dataset {dataset.name} stored: {dataset.rows} rows.")
                return redirect("datasets:detail", pk=dataset.pk)
        status = 400
    context = {"form": form, "errors": errors, "more_errors": max(0, error_count - len(errors))}
    return render(request, "datasets/upload.html", context, status=status)


class _UploadScope:
    throttle_scope = "upload"


def _throttled(request: HttpRequest) -> str | None:
    """The API's upload budget applies to the page too (one budget per user)."""
    throttle = ScopedThrottle()
    if throttle.allow_request(request, _UploadScope()):  # type: ignore[arg-type]
        return None
    wait = throttle.wait()
    return f"Too many uploads; try again in {int(wait or 60)} seconds."


@login_required
def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    from webapp.runs.selectors import base_model_list
    from webapp.tools.selectors import tool_list

    dataset = _get(request, pk)
    preview, preview_error = None, ""
    try:
        preview = preview_for_request(user=request.user, dataset=dataset, params=request.GET)
    except DomainError as exc:
        preview_error = exc.message
    chosen_tools = {t for t in ",".join(request.GET.getlist("tools")).split(",") if t}
    context = {
        "dataset": dataset,
        "preview": preview,
        "preview_error": preview_error,
        "bars": histogram_svg_bars(preview.histogram) if preview else [],
        "char_bars": _char_bars(dataset),
        "base_models": [m for m in base_model_list() if m.local_folder() is not None],
        "tools": list(tool_list(user=request.user)) if dataset.kind != Dataset.Kind.CORPUS else [],
        "chosen_tools": chosen_tools,
        "call_format": request.GET.get("call_format") or "tags",
    }
    return render(request, "datasets/detail.html", context)


def _char_bars(dataset: Dataset) -> list[dict[str, Any]]:
    key = "prompt_chars" if dataset.kind == Dataset.Kind.PROMPTS else "chars"
    bins = (dataset.stats or {}).get(key, {}).get("histogram") or []
    peak = max((b["count"] for b in bins), default=0)
    return [{**b, "pct": round(100 * b["count"] / peak, 1) if peak else 0} for b in bins]


@login_required
def dataset_edit(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = _get(request, pk)
    initial = {"name": dataset.name, "description": dataset.description}
    form = RenameForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.dataset_update(dataset=dataset, **form.cleaned_data)
        except DomainError as exc:
            _show_errors(form, exc)
        else:
            messages.success(request, "Saved.")
            return redirect("datasets:detail", pk=dataset.pk)
    return render(request, "datasets/edit.html", {"form": form, "dataset": dataset})


@login_required
def dataset_delete(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = _get(request, pk)
    if request.method == "POST":
        try:
            services.dataset_delete(dataset=dataset)
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("datasets:detail", pk=dataset.pk)
        messages.success(request, f"Dataset {dataset.name} deleted.")
        return redirect("datasets:list")
    return render(request, "datasets/delete.html", {"dataset": dataset})
