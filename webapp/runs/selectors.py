"""Reads of runs, the base-model catalogue, presets and the config schema. Runs are always scoped."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from arpo_engine import config_meta
from webapp.core.ownership import get_visible, visible_to

from . import configs
from .models import BaseModel, Run


def run_list(
    *,
    user: Any,
    team: str | None = None,
    status: str | None = None,
    preset: str | None = None,
    dataset: Any = None,
    base_model: str | None = None,
    search: str | None = None,
    owner: str | None = None,
) -> QuerySet[Run]:
    """The runs `user` may see, newest first. `team`: a team slug, or "personal" for the user's own;
    `owner`: a username, who owns the run or (for a team's run) created it."""
    qs = visible_to(Run, user).select_related(
        "owner_user", "owner_team", "created_by", "base_model", "dataset", "eval_dataset", "sft_dataset"
    )
    if team == "personal":
        qs = qs.filter(owner_team__isnull=True)
    elif team:
        qs = qs.filter(owner_team__slug=team)
    if status:
        qs = qs.filter(status=status)
    if preset:
        qs = qs.filter(preset=preset)
    if dataset:
        qs = qs.filter(Q(dataset_id=dataset) | Q(eval_dataset_id=dataset) | Q(sft_dataset_id=dataset))
    if base_model:
        qs = qs.filter(base_model__slug=base_model)
    if search:
        qs = qs.filter(name__icontains=search)
    if owner:
        qs = qs.filter(Q(owner_user__username=owner) | Q(created_by__username=owner))
    return qs.prefetch_related("tools")


def run_owner_choices(*, user: Any) -> list[str]:
    """Usernames the run list's owner filter offers: the viewer and the members of their teams."""
    from django.contrib.auth import get_user_model

    from webapp.accounts.selectors import teams_for

    people = get_user_model().objects.filter(Q(pk=user.pk) | Q(memberships__team__in=teams_for(user=user)))
    return sorted(set(people.values_list("username", flat=True)))


def run_get(*, user: Any, run_id: Any) -> Run:
    return get_visible(run_list(user=user), user, pk=run_id)


def run_tools(run: Run) -> list[Any]:
    """The run's tools in config order."""
    tools = {t.pk: t for t in run.tools.all()}
    ordered = [tools.pop(i) for i in run.tool_order if i in tools]
    return ordered + sorted(tools.values(), key=lambda t: t.pk)


def base_model_list() -> QuerySet[BaseModel]:
    return BaseModel.objects.filter(is_active=True)


def preset_list() -> list[dict[str, Any]]:
    """Every preset: name, label, the keys its file sets, and the full config it starts a run from."""
    return [
        {
            "name": name,
            "label": label,
            "values": configs.preset_values(name),
            "resolved": configs.preset_base(name),
        }
        for name, label in configs.preset_choices()
    ]


def config_schema() -> dict[str, Any]:
    schema = config_meta.schema()
    schema["presets"] = [{"name": n, "label": label} for n, label in configs.preset_choices()]
    return schema


def config_diff(run: Run) -> list[dict[str, Any]]:
    """The run's editable knobs that differ from its preset: [{key, preset, value}]."""
    base = config_meta.flatten(configs.preset_base(run.preset))
    resolved = config_meta.flatten(run.config)
    return [
        {"key": meta.key, "preset": base.get(meta.key), "value": resolved.get(meta.key)}
        for meta in config_meta.editable_fields()
        if meta.key in resolved and resolved.get(meta.key) != base.get(meta.key)
    ]


# --- execution: state, queue, events and what they produced ----------------------------------------------


def is_run_owner(user: Any, run: Run) -> bool:
    """The run's owner: its user, or for a team's run the member who created it (tracebacks are theirs only)."""
    return bool(user and user.is_authenticated and user.pk in (run.owner_user_id, run.created_by_id))


def queue_position(run: Run) -> int | None:
    """1 for the next queued run to start, 2 behind it …; None when the run is not queued."""
    if run.status != Run.Status.QUEUED or run.launched_at is None:
        return None
    ahead = Run.objects.filter(status=Run.Status.QUEUED, launched_at__lt=run.launched_at).count()
    return ahead + 1


def run_events(*, user: Any, run: Run, after: int = 0, limit: int = 500) -> QuerySet[Any]:
    """The run's events after seq `after`, oldest first; private ones only for its owner."""
    from .models import RunEvent

    qs = RunEvent.objects.filter(run=run, seq__gt=after).order_by("seq")
    if not is_run_owner(user, run):
        qs = qs.filter(private=False)
    return qs[: max(1, min(limit, 5000))]


def metric_points(*, run: Run) -> QuerySet[Any]:
    from .models import MetricPoint

    return MetricPoint.objects.filter(run=run).order_by("step")


def rollout_trees(*, run: Run, step: int | None = None) -> QuerySet[Any]:
    from .models import RolloutTree

    qs = RolloutTree.objects.filter(run=run)
    if step is not None:
        qs = qs.filter(step=step)
    return qs.order_by("step", "prompt_index")


def checkpoints(*, run: Run) -> QuerySet[Any]:
    from .models import Checkpoint

    return Checkpoint.objects.filter(run=run).order_by("step")


def lease_history(*, run: Run) -> QuerySet[Any]:
    from .models import RunLease

    return RunLease.objects.filter(run=run).order_by("acquired_at", "id")


def orphaned_run_ids() -> list[int]:
    """Runs that should be executing but whose worker is gone: active, leased before, no live lease now."""
    from django.utils import timezone

    from .models import ACTIVE, RunLease

    live = RunLease.objects.filter(released_at__isnull=True, expires_at__gt=timezone.now()).values("run_id")
    return list(
        Run.objects.filter(status__in=ACTIVE, leases__isnull=False)
        .exclude(pk__in=live)
        .values_list("pk", flat=True)
        .distinct()
    )
