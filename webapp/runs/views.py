"""Pages of the runs app: list, preset chooser, create/edit form, detail, YAML export and import, clone, delete."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from arpo_engine import config_meta
from webapp.accounts.selectors import teams_for
from webapp.core.errors import DomainError, NotFound

from . import configs, live_list, selectors, services, twins
from .forms import ImportForm, RunForm
from .models import Run
from .views_preflight import preflight_context


def _run(request: HttpRequest, pk: int) -> Run:
    try:
        return selectors.run_get(user=request.user, run_id=pk)
    except NotFound:
        raise Http404("No such run.") from None


@login_required
def run_list(request: HttpRequest) -> HttpResponse:
    team = request.GET.get("team") or None
    status = request.GET.get("status") or None
    owner = request.GET.get("owner") or None
    runs = selectors.run_list(user=request.user, team=team, status=status, owner=owner)
    context = {
        "runs": runs,
        "rows": live_list.rows_for(runs),  # progress, key metrics, sparkline and alerts; updated live
        "teams": teams_for(user=request.user),
        "team": team or "",
        "status": status or "",
        "statuses": Run.Status.choices,
        "owner": owner or "",
        "owners": selectors.run_owner_choices(user=request.user),
    }
    return render(request, "runs/list.html", context)


def _form_page(request: HttpRequest, form: RunForm, run: Run | None) -> HttpResponse:
    stored = run.errors if run is not None and not form.is_bound else {}
    context = {
        "form": form,
        "run": run,
        "groups": form.knob_groups(stored),
        "stored_errors": stored,
        "choice_errors": {k: v for k, v in stored.items() if k in ("dataset", "eval_dataset", "sft_dataset", "tools")},
        "other_errors": {k: v for k, v in stored.items() if k not in form.fields},
        "preset_label": configs.preset_label(form["preset"].value() or configs.DEFAULT_PRESET),
    }
    return render(request, "runs/form.html", context, status=400 if form.is_bound and form.errors else 200)


def _after_save(request: HttpRequest, run: Run, verb: str) -> HttpResponse:
    if run.launchable:
        messages.success(request, f"{verb} {run.name}: the config is valid and launchable.")
        return redirect("runs:detail", run.pk)
    count = sum(len(v) for v in run.errors.values())
    messages.warning(request, f"{verb} {run.name} as a draft with {count} problem(s); fix them to make it launchable.")
    return redirect("runs:edit", run.pk)


@login_required
def run_new(request: HttpRequest) -> HttpResponse:
    preset = request.GET.get("preset") or request.POST.get("preset")
    if request.method == "GET" and preset not in dict(configs.preset_choices()):
        presets = selectors.preset_list()
        for p in presets:
            p["changes"] = config_meta.flatten(p["values"])
        return render(request, "runs/choose_preset.html", {"presets": presets})
    if request.method == "POST":
        form = RunForm(request.POST, user=request.user)
        if form.is_valid():
            try:
                run = services.run_create(
                    user=request.user, team=form.cleaned_data.get("team") or None, overrides=form.overrides(),
                    **form.choices(),
                )  # fmt: skip
            except DomainError as exc:
                form.add_domain_errors(exc.fields or {"config": [exc.message]})
            else:
                return _after_save(request, run, "Saved")
        return _form_page(request, form, None)
    assert preset is not None
    initial = {"preset": preset, "name": f"{configs.preset_label(preset)} run", **RunForm.initial_for(preset)}
    return _form_page(request, RunForm(user=request.user, initial=initial), None)


@login_required
def run_edit(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run(request, pk)
    if not run.is_draft:
        messages.error(request, "Only a draft can be edited; clone the run to change it.")
        return redirect("runs:detail", run.pk)
    if request.method == "POST" and request.POST.get("action") == "reset":
        services.run_update(user=request.user, run=run, overrides={}, replace_overrides=True)
        messages.info(request, f"Every knob is back at its {configs.preset_label(run.preset)} value.")
        return redirect("runs:edit", run.pk)
    if request.method == "POST":
        form = RunForm(request.POST, user=request.user, editing=True)
        if form.is_valid():
            try:
                run = services.run_update(
                    user=request.user, run=run, overrides=form.overrides(), replace_overrides=True, **form.choices()
                )
            except DomainError as exc:
                form.add_domain_errors(exc.fields or {"config": [exc.message]})
            else:
                return _after_save(request, run, "Saved")
        return _form_page(request, form, run)
    initial = {
        "name": run.name,
        "preset": run.preset,
        "base_model": run.base_model_id,
        "dataset": run.dataset_id,
        "eval_dataset": run.eval_dataset_id,
        "sft_dataset": run.sft_dataset_id,
        "tools": [t.pk for t in selectors.run_tools(run)],
        **RunForm.initial_for(run.preset, run.overrides),
    }
    return _form_page(request, RunForm(user=request.user, editing=True, initial=initial), run)


def _config_groups(run: Run) -> list[dict[str, Any]]:
    resolved = config_meta.flatten(run.public_config)
    changed = {d["key"]: d["preset"] for d in selectors.config_diff(run)}
    groups = []
    for key, label, metas in config_meta.grouped():
        rows = [
            {
                "meta": meta,
                "value": resolved.get(meta.key),
                "changed": meta.key in changed,
                "preset_value": changed.get(meta.key),
                "errors": run.errors.get(meta.key, []),
            }
            for meta in metas
            if meta.key != "tools"
        ]
        groups.append({"key": key, "label": label, "rows": rows})
    return groups


def _head_context(run: Run) -> dict[str, Any]:
    """What the page head (runs/_head.html) shows: the run's state and the actions that state allows."""
    return {
        "run": run,
        "preset_label": configs.preset_label(run.preset),
        "grpo_twin": run.twins.order_by("-created_at").first(),
        "can_twin": not twins.is_grpo(run),
    }


@login_required
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run(request, pk)
    context = {
        **_head_context(run),
        "tools": selectors.run_tools(run),
        "groups": _config_groups(run),
        "diff": selectors.config_diff(run),
        "error_count": sum(len(v) for v in run.errors.values()),
        **preflight_context(request, run),
    }
    return render(request, "runs/detail.html", context)


@login_required
def run_head(request: HttpRequest, pk: int) -> HttpResponse:
    """The page head alone, for the live run page to swap in when the run's status, phase or step moves on."""
    response = render(request, "runs/_head.html", _head_context(_run(request, pk)))
    response["Cache-Control"] = "no-store"
    return response


@login_required
def run_export(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run(request, pk)
    response = HttpResponse(services.export_yaml(run), content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}.yaml"'
    return response


@login_required
def run_import(request: HttpRequest) -> HttpResponse:
    form = ImportForm(request.POST or None, request.FILES or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            run = services.run_import(
                user=request.user,
                text=form.cleaned_data["file"].read(services.IMPORT_MAX_BYTES + 1),
                name=form.cleaned_data.get("name") or None,
                team=form.cleaned_data.get("team") or None,
            )
        except DomainError as exc:
            for key, msgs in (exc.fields or {"file": [exc.message]}).items():
                for message in msgs:
                    form.add_error(
                        key if key in form.fields else None, message if key in form.fields else f"{key}: {message}"
                    )
        else:
            return _after_save(request, run, "Imported")
    return render(request, "runs/import.html", {"form": form}, status=400 if form.errors else 200)


@login_required
@require_POST
def run_clone(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run(request, pk)
    clone = services.run_clone(user=request.user, run=run)
    messages.success(request, f"Cloned into {clone.name}.")
    return redirect("runs:edit", clone.pk)


@login_required
@require_POST
def run_delete(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run(request, pk)
    try:
        services.run_delete(user=request.user, run=run)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("runs:detail", run.pk)
    messages.success(request, f"Deleted {run.name}.")
    return redirect("runs:list")
