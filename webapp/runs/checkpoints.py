"""Reads of a run's checkpoints: the list with its `latest` and `best` aliases, one step by reference,
and the streamed archive of it (archive.py). The caller has found the run through the scoped selector.

The engine keeps only the last few steps on disk (config `checkpoint.keep_last`, plus the best);
rows of pruned steps stay, marked not `available`. `latest` is the engine's alias (the newest saved
step), `best` its alias for the highest `eval/accuracy`; a run that never evaluated has no `best`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from zipstream import ZipStream

from webapp.core.errors import NotFound

from .archive import checkpoint_archive
from .models import Checkpoint, Run

ALIASES = ("latest", "best")


@dataclass(frozen=True)
class CheckpointRow:
    checkpoint: Checkpoint
    available: bool
    latest: bool
    best: bool

    @property
    def step(self) -> int:
        return self.checkpoint.step

    @property
    def eval_metrics(self) -> dict[str, Any]:
        return {k: v for k, v in self.checkpoint.metrics.items() if k.startswith("eval/")}


def _folder(checkpoint: Checkpoint) -> Path | None:
    """The step folder under the media root; None for one recorded elsewhere (never served)."""
    media = Path(settings.MEDIA_ROOT).resolve()
    folder = (media / checkpoint.folder).resolve()
    return folder if media in folder.parents else None


def _is_saved(folder: Path | None) -> bool:
    return folder is not None and (folder / "config.json").is_file()


def _alias_step(run_dir: Path, name: str) -> int | None:
    link = run_dir / name
    if not link.is_symlink():
        return None
    target = os.readlink(link)
    if not target.startswith("step-") or not target.removeprefix("step-").isdigit():
        return None
    return int(target.removeprefix("step-"))


def checkpoint_rows(*, run: Run) -> list[CheckpointRow]:
    """Every checkpoint the run recorded, oldest step first, with whether its files are still there."""
    checkpoints = list(Checkpoint.objects.filter(run=run).order_by("step"))
    if not checkpoints:
        return []
    available = {c.step: _is_saved(_folder(c)) for c in checkpoints}
    newest = _folder(checkpoints[-1])
    latest = _alias_step(newest.parent, "latest") if newest is not None else None
    if latest is None or not available.get(latest):
        latest = max((s for s, ok in available.items() if ok), default=None)
    best = _alias_step(newest.parent, "best") if newest is not None else None
    return [
        CheckpointRow(checkpoint=c, available=available[c.step], latest=c.step == latest, best=c.step == best)
        for c in checkpoints
    ]


def checkpoint_for(*, run: Run, ref: str) -> Checkpoint:
    """The checkpoint `ref` names: a step number, `latest` or `best`; NotFound when its files are gone."""
    rows = checkpoint_rows(run=run)
    if ref in ALIASES:
        found = next((r for r in rows if getattr(r, ref)), None)
        if found is None:
            why = "no evaluation chose one yet" if ref == "best" and rows else "no checkpoint was saved yet"
            raise NotFound(f"Run {run.name} has no {ref} checkpoint: {why}.")
    elif ref.isdigit():
        found = next((r for r in rows if r.step == int(ref)), None)
        if found is None:
            raise NotFound(f"Run {run.name} saved no checkpoint at step {int(ref)}.")
    else:
        raise NotFound("A checkpoint is named by its step number, `latest` or `best`.")
    if not found.available:
        raise NotFound(f"Step {found.step} of run {run.name} was pruned to keep disk use bounded; "
                       "download a newer step.")  # fmt: skip
    return found.checkpoint


def checkpoint_folder(checkpoint: Checkpoint) -> Path | None:
    """The step folder on this machine while its files are there (the playground loads it); else None."""
    folder = _folder(checkpoint)
    return folder if _is_saved(folder) else None


def checkpoint_download(*, run: Run, ref: str) -> tuple[ZipStream, str]:
    """The streamed archive of a checkpoint and its file name (`run-<id>-step-<N>.zip`)."""
    checkpoint = checkpoint_for(run=run, ref=ref)
    folder = _folder(checkpoint)
    if folder is None:  # checkpoint_for answers only available steps, whose folders are under the media root
        raise NotFound("This checkpoint's files are not on the server.")
    top = f"run-{run.pk}-step-{checkpoint.step}"
    return checkpoint_archive(folder, top), f"{top}.zip"
