"""Crash-safe files and folders for checkpoints: atomic folder writes, swept temp names, symlink aliases.

A folder is filled under a hidden temp name beside its target, fsynced, and renamed into place; a
deletion renames first. So a crash at any moment leaves either the old or the new folder, plus hidden
temp folders that `sweep_temp` removes on the next save.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

_STEP_RE = re.compile(r"^step-(\d+)$")


def write_atomically(target: Path, fill: Callable[[Path], None]) -> None:
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(mode=0o755)
    try:
        fill(tmp)
        for f in tmp.iterdir():
            fsync(f)
        fsync(tmp)
        remove_dir(target)
        tmp.rename(target)
        fsync(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def fsync(path: Path) -> None:
    # Flush data and directory entries so a power loss cannot leave a renamed but empty file behind.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_dir(path: Path) -> None:
    if not path.exists():
        return
    # Rename first, so a crash mid-delete leaves a hidden temp folder (swept later), not a torn step.
    doomed = path.parent / f".{path.name}.tmp-del-{uuid.uuid4().hex[:8]}"
    path.rename(doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def sweep_temp(folder: Path) -> None:
    for p in folder.glob(".*.tmp-*"):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def set_alias(run_dir: Path, name: str, target: str) -> None:
    tmp = run_dir / f".{name}.tmp-{uuid.uuid4().hex[:8]}"
    os.symlink(target, tmp)  # relative, so the run folder can be moved or mounted elsewhere
    os.replace(tmp, run_dir / name)


def alias_target(link: Path) -> Path | None:
    if not link.is_symlink():
        return None
    target = link.parent / os.readlink(link)
    return target if target.is_dir() else None


def step_numbers(folder: Path) -> set[int]:
    if not folder.is_dir():
        return set()
    return {int(m.group(1)) for p in folder.iterdir() if (m := _STEP_RE.match(p.name)) and p.is_dir()}


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data
