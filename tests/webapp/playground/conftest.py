"""A run with saved checkpoints, for the playground's web tests: its step folders on disk (a config.json is
what makes a step available) and its checkpoint events recorded through the relay's service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.webapp import factories as make
from webapp.runs import recording
from webapp.runs.models import Run


def checkpointed_run(user: Any, *, team: Any = None, steps: tuple[int, ...] = (1, 2), name: str = "") -> Run:
    """A finished run of `user` (or of `team`) with these steps saved; the last is `latest`."""
    run = make.run(user, team=team, name=name or make.unique("trained"))
    Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED)
    run.refresh_from_db()
    events = []
    for seq, step in enumerate(steps, start=1):
        folder = run.checkpoint_dir() / f"run-{run.pk}" / f"step-{step}"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        events.append({"seq": seq, "kind": "checkpoint", "step": step, "data": {"folder": str(folder), "metrics": {}}})
    recording.run_events_record(run_id=run.pk, events=events)
    return run


@pytest.fixture
def trained() -> Callable[..., Run]:
    return checkpointed_run
