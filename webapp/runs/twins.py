"""The "Compare with GRPO" action: one action that clones a run into its GRPO baseline twin and launches the pair.

The twin keeps the run's data, tools, model, seed, group size M, steps, learning rate and every other
knob, and takes the `grpo_baseline` preset's algorithm: no branching, N = M independent samples per
prompt (ARPO_SPEC.md §2), plain soft advantages. So the two differ only in what ARPO adds.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from arpo_engine import config_meta
from arpo_engine.config import merge
from webapp.core.errors import DomainError

from . import configs, lifecycle
from .models import Run
from .services import run_clone

GRPO_PRESET = "grpo_baseline"


def grpo_overrides(run: Run) -> dict[str, Any]:
    """The twin's overrides over the GRPO preset: the run's knobs, the preset's algorithm, N = M."""
    values = merge(configs.preset_base(run.preset), run.overrides)
    values = merge(values, configs.preset_values(GRPO_PRESET))
    values["rollout"]["initial_samples"] = values["rollout"]["group_size"]
    return configs.diff_from(values, configs.preset_base(GRPO_PRESET))


def is_grpo(run: Run) -> bool:
    return config_meta.get_path(run.config, "branching.enabled") is False or run.preset == GRPO_PRESET


@transaction.atomic
def run_grpo_twin(*, user: Any, run: Run, launch: bool = True) -> Run:
    """The run's GRPO twin (a clone linked by `twin_of`). With `launch`: a launchable draft is launched
    with its twin; a run already launched gets its twin launched alone; otherwise both stay drafts."""
    run = Run.objects.select_for_update().get(pk=run.pk)
    if is_grpo(run):
        raise DomainError(f"Run {run.name} is a GRPO run already (no branching): there is nothing to compare.",
                          code="already_grpo", status=409)  # fmt: skip
    existing = run.twins.order_by("-created_at").first()
    if existing is not None:
        raise DomainError(f"Run {run.name} has a GRPO twin already: {existing.name} (run {existing.pk}).",
                          code="twin_exists", status=409)  # fmt: skip
    twin = run_clone(
        user=user, run=run, name=f"{run.name} · GRPO"[:200], preset=GRPO_PRESET,
        overrides=grpo_overrides(run), replace_overrides=True,
    )  # fmt: skip
    twin.twin_of = run
    twin.save(update_fields=["twin_of", "updated_at"])
    if not launch:
        return twin
    try:
        if run.is_draft:
            lifecycle.run_launch(user=user, run=run)  # refuses a draft that is not launchable (now)
        twin = lifecycle.run_launch(user=user, run=twin)
    except DomainError:
        twin.refresh_from_db()  # the pair stays as it is: drafts to fix, or the original already launched
    return twin
