"""Writes of datasets: create from uploaded files (all or nothing), rename, delete.

`dataset_create` validates and normalizes into a private work folder under MEDIA_ROOT/datasets/
(same filesystem, so the final move is a rename), inserts the row, and moves the folder into place
only when the transaction commits. Any failure before that deletes the work folder; a transaction
rolled back later leaves a work folder that `sweep_stale_work` removes on a later upload.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import ProtectedError

from webapp.core.errors import DomainError
from webapp.core.ownership import Owner

from . import ingest
from .ingest import Chunked, UploadError
from .models import Dataset

log = logging.getLogger(__name__)

WORK_DIR_NAME = ".incoming"
_STALE_WORK_S = 6 * 3600


def upload_limits() -> ingest.Limits:
    return ingest.Limits(
        max_bytes=settings.ARPO_UPLOAD_MAX_BYTES,
        max_decompressed_bytes=settings.ARPO_DECOMPRESSED_MAX_BYTES,
        max_rows=settings.ARPO_DATASET_MAX_ROWS,
        max_row_chars=settings.ARPO_DATASET_MAX_ROW_CHARS,
        max_corpus_docs=settings.ARPO_CORPUS_MAX_DOCS,
    )


def _datasets_root() -> Path:
    return Path(settings.MEDIA_ROOT) / "datasets"


def dataset_create(
    *,
    user: Any,
    owner: Owner,
    kind: str,
    file: Chunked,
    name: str = "",
    description: str = "",
    eval_file: Chunked | None = None,
    eval_percent: int | None = None,
    split_seed: int = 0,
) -> Dataset:
    """Validate and store a dataset; UploadError (nothing stored) on any problem with the files."""
    if kind not in Dataset.Kind.values:
        raise DomainError(f"Unknown dataset kind {kind!r}.", fields={"kind": ["Choose prompts, sft or corpus."]})
    if kind != Dataset.Kind.PROMPTS and (eval_file is not None or eval_percent):
        raise DomainError("Only a prompts dataset has an eval split.", fields={"eval_file": ["Only for prompts."]})
    if eval_file is not None and eval_percent:
        raise DomainError(
            "Give either a separate eval file or an eval percentage, not both.",
            fields={"eval_percent": ["Leave empty when you upload an eval file."]},
        )
    if eval_percent is not None and not 0 <= eval_percent <= 50:
        raise DomainError("The eval share must be between 0 and 50 %.", fields={"eval_percent": ["0 to 50."]})
    limits = upload_limits()
    root = _datasets_root()
    sweep_stale_work(root)
    uid = uuid.uuid4()
    work = root / WORK_DIR_NAME / uid.hex
    work.mkdir(parents=True)
    try:
        main = ingest.spool(file, work, "upload-main", limits=limits)
        extra = ingest.spool(eval_file, work, "upload-eval", limits=limits) if eval_file is not None else None
        if kind == Dataset.Kind.PROMPTS:
            built = ingest.build_prompts(
                main, work, limits=limits, eval_file=extra, eval_percent=eval_percent or None, seed=split_seed
            )
        elif kind == Dataset.Kind.SFT:
            built = ingest.build_sft(main, work, limits=limits)
        else:
            built = ingest.build_corpus(main, work, limits=limits)
        for upload in work.glob("upload-*"):
            upload.unlink()  # only the normalized files are kept
        dataset = _insert(
            user=user, owner=owner, kind=kind, uid=uid, main=main, extra=extra, built=built, work=work,
            name=name, description=description, eval_percent=eval_percent or None, split_seed=split_seed,
        )  # fmt: skip
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return dataset


@transaction.atomic
def _insert(
    *,
    user: Any,
    owner: Owner,
    kind: str,
    uid: uuid.UUID,
    main: ingest.Spooled,
    extra: ingest.Spooled | None,
    built: ingest.Built,
    work: Path,
    name: str,
    description: str,
    eval_percent: int | None,
    split_seed: int,
) -> Dataset:
    dataset = Dataset.objects.create(
        **owner.fields(),
        created_by=user,
        uid=uid,
        kind=kind,
        name=(name.strip() or Path(main.display_name).stem or "dataset")[:200],
        description=description.strip(),
        original_name=main.display_name,
        eval_original_name=extra.display_name if extra else "",
        format=main.format,
        size_bytes=main.size_bytes + (extra.size_bytes if extra else 0),
        stored_bytes=_folder_bytes(work),
        sha256=main.sha256,
        rows=built.rows,
        train_rows=built.train_rows,
        eval_rows=built.eval_rows,
        eval_percent=eval_percent,
        split_seed=split_seed,
        stats=built.stats,
    )
    final = dataset.storage_dir()
    transaction.on_commit(lambda: _move_into_place(work, final))
    return dataset


def _move_into_place(work: Path, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(work, final)


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def sweep_stale_work(root: Path, *, older_than_s: float = _STALE_WORK_S) -> None:
    """Remove work folders left by transactions rolled back after the upload (nothing else can)."""
    incoming = root / WORK_DIR_NAME
    if not incoming.is_dir():
        return
    cutoff = time.time() - older_than_s
    for folder in incoming.iterdir():
        try:
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue


@transaction.atomic
def dataset_update(*, dataset: Dataset, name: str | None = None, description: str | None = None) -> Dataset:
    if name is not None:
        if not name.strip():
            raise DomainError("The name cannot be empty.", fields={"name": ["Give the dataset a name."]})
        dataset.name = name.strip()[:200]
    if description is not None:
        dataset.description = description.strip()
    dataset.save(update_fields=["name", "description", "updated_at"])
    return dataset


@transaction.atomic
def dataset_delete(*, dataset: Dataset) -> None:
    """Delete the row; its files go once the deletion commits. Refused while a tool or run uses it."""
    folder = dataset.storage_dir()
    try:
        dataset.delete()
    except ProtectedError as exc:
        users = sorted({str(obj) for obj in exc.protected_objects})[:5]
        raise DomainError(
            f"This dataset is in use ({', '.join(users)}); remove it there first.", code="in_use", status=409
        ) from None
    transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))


__all__ = ["UploadError", "dataset_create", "dataset_delete", "dataset_update", "upload_limits"]
