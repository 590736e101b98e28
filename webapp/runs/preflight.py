"""Preflight ("Check" on a draft): queue a check of the run on the worker, and the worker's side of it.

The check itself is the engine's (arpo_engine.preflight): a handful of rollouts with the run's starting
model, tools and scorer. The web side only stores a Preflight row and, after commit, enqueues
`worker.tasks.run_preflight` on the "short" queue; the worker fills the row in.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from django.db import transaction
from django.utils import timezone

from webapp.core.errors import DomainError, NotFound

from .models import Preflight, Run
from .services import run_revalidate

log = logging.getLogger(__name__)


@transaction.atomic
def run_preflight_start(*, user: Any, run: Run) -> Preflight:
    """Queue a check of a launchable draft; a check of it that is still queued or running is returned instead."""
    run = Run.objects.select_for_update().get(pk=run.pk)
    if not run.is_draft:
        raise DomainError(f"Run {run.name} is {run.get_status_display().lower()}; a check is for a draft.",
                          code="not_draft", status=409)  # fmt: skip
    run = run_revalidate(user=user, run=run)
    if not run.launchable:
        first = next(iter(run.errors.items()), ("config", ["is not valid"]))
        raise DomainError(f"Fix the run's problems first: {first[0]}: {first[1][0]}", code="not_launchable",
                          fields=run.errors, status=409)  # fmt: skip
    pending = run.preflights.filter(status__in=(Preflight.Status.QUEUED, Preflight.Status.RUNNING)).first()
    if pending is not None:
        return pending
    preflight = Preflight.objects.create(run=run, created_by=user)
    from worker.tasks import run_preflight

    transaction.on_commit(lambda: run_preflight.delay(preflight.pk))
    return preflight


def preflight_get(*, run: Run, preflight_id: Any) -> Preflight:
    """A check of a run the caller may see (the run comes from the scoped selector)."""
    found = run.preflights.filter(pk=preflight_id).first() if str(preflight_id).isdigit() else None
    if found is None:
        raise NotFound("check")
    return found


def latest_preflight(run: Run) -> Preflight | None:
    return run.preflights.first()


def preflight_execute(*, preflight_id: int) -> Preflight:
    """Worker side: run the engine's check and store its report. Never raises for a problem of the run;
    a redelivered message for a finished check does nothing."""
    from arpo_engine.config import RunConfig
    from arpo_engine.preflight import run_preflight
    from webapp.tools.selectors import tool_secrets_by_name

    with transaction.atomic():
        preflight = Preflight.objects.select_for_update(of=("self",)).select_related("run").get(pk=preflight_id)
        if preflight.finished:
            return preflight
        preflight.status = Preflight.Status.RUNNING
        preflight.started_at = timezone.now()
        preflight.save(update_fields=["status", "started_at"])
    run = preflight.run
    try:
        config = RunConfig.from_dict(run.config)
        secrets = tool_secrets_by_name(tool_ids=list(run.tools.values_list("pk", flat=True)))
        size = check_size()
        report = run_preflight(
            config, run_id=str(run.pk), tool_secrets=secrets or None, prompts=size["prompts"], paths=size["paths"],
            max_response_tokens=size["max_response_tokens"],
        )  # fmt: skip
    except Exception as exc:  # whatever stopped the check, the person sees why, never a traceback
        log.warning("preflight %s of run %s failed", preflight.pk, run.pk, exc_info=True)
        preflight.status, preflight.error = Preflight.Status.FAILED, explain(exc)
    else:
        body = report.to_dict()
        preflight.status = Preflight.Status.DONE
        preflight.warnings = body.pop("warnings")
        preflight.timings = body.pop("timings")
        preflight.results = body
    preflight.finished_at = timezone.now()
    preflight.save(update_fields=["status", "results", "warnings", "timings", "error", "finished_at"])
    return preflight


def check_size() -> dict[str, int]:
    """How much the worker's check rolls out; the engine's defaults unless the worker's environment says
    (ARPO_PREFLIGHT_PROMPTS, ARPO_PREFLIGHT_PATHS, ARPO_PREFLIGHT_MAX_TOKENS: a slow machine, or tests)."""
    from arpo_engine import preflight as engine

    def number(name: str, default: int) -> int:
        value = os.environ.get(name, "")
        return int(value) if value.isdigit() and int(value) > 0 else default

    return {
        "prompts": number("ARPO_PREFLIGHT_PROMPTS", engine.DEFAULT_PROMPTS),
        "paths": number("ARPO_PREFLIGHT_PATHS", engine.DEFAULT_PATHS),
        "max_response_tokens": number("ARPO_PREFLIGHT_MAX_TOKENS", engine.MAX_RESPONSE_TOKENS),
    }


def explain(exc: BaseException) -> str:
    """A reason a person can act on; no path of the server in it."""
    from arpo_engine.config import ConfigError
    from arpo_engine.data import DataError

    from .recording import scrub

    text = scrub(" ".join(str(exc).split()))[:800]
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return "Out of memory while checking: the worker could not hold the model; try again when it is less busy."
    if isinstance(exc, FileNotFoundError) or "no such file" in text or text.startswith("no data file"):
        return f"A file the run needs is gone ({text}): upload the dataset again."
    if isinstance(exc, DataError):
        return f"The dataset has problems: {text}"
    if isinstance(exc, ConfigError):
        return f"The run's config cannot be used: {text}"
    if type(exc).__name__ == "SoftTimeLimitExceeded":
        return "The check took too long and was stopped: lower rollout.max_response_tokens, or try again later."
    return f"The check failed: {type(exc).__name__}: {text}"
