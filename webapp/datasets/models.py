"""Datasets: RL prompts, SFT demonstrations and search corpora, each stored normalized on disk.

A dataset row is written only after its files validated; the files live under
MEDIA_ROOT/datasets/<uid>/ (train.jsonl, eval.jsonl, sft.jsonl, corpus.jsonl + corpus.index/) and
are moved there only when the row's transaction commits. Other apps (tools, runs, the worker) reach
the files through the `*_path()` methods, never by building paths themselves.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.db import models

from webapp.core.ownership import Owned

TRAIN_FILE = "train.jsonl"
EVAL_FILE = "eval.jsonl"
SFT_FILE = "sft.jsonl"
CORPUS_FILE = "corpus.jsonl"
CORPUS_INDEX_DIR = "corpus.index"  # a bm25s index folder (BM25 matrices + vocabulary)


class Dataset(Owned):
    class Kind(models.TextChoices):
        PROMPTS = "prompts", "RL prompts"
        SFT = "sft", "SFT demonstrations"
        CORPUS = "corpus", "Search corpus"

    class Format(models.TextChoices):
        JSONL = "jsonl", "JSONL"
        CSV = "csv", "CSV"
        PARQUET = "parquet", "Parquet"

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, help_text="Names the storage folder.")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    original_name = models.CharField(max_length=255, help_text="The uploaded file's name, sanitized; display only.")
    eval_original_name = models.CharField(max_length=255, blank=True, help_text="The separate eval file, if any.")
    format = models.CharField(max_length=16, choices=Format.choices)
    size_bytes = models.BigIntegerField(default=0, help_text="Bytes uploaded (all files).")
    stored_bytes = models.BigIntegerField(default=0, help_text="Bytes of the normalized files on disk.")
    sha256 = models.CharField(max_length=64, help_text="Of the uploaded (main) file.")
    rows = models.PositiveIntegerField(default=0, help_text="Rows (documents for a corpus) in all files.")
    train_rows = models.PositiveIntegerField(default=0)
    eval_rows = models.PositiveIntegerField(default=0)
    eval_percent = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Carved-off eval share, if any.")
    split_seed = models.PositiveIntegerField(default=0)
    stats = models.JSONField(default=dict, blank=True, help_text="Length histogram, token counts, data sources.")

    class Meta(Owned.Meta):
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["kind", "-created_at"])]

    def __str__(self) -> str:
        return self.name

    # --- files ----------------------------------------------------------------------------------

    def storage_dir(self) -> Path:
        return Path(settings.MEDIA_ROOT) / "datasets" / str(self.uid)

    def _file(self, name: str, *kinds: str) -> Path | None:
        if self.kind not in kinds:
            return None
        path = self.storage_dir() / name
        return path if path.exists() else None

    def train_path(self) -> Path | None:
        """The RL training prompts (normalized JSONL that `arpo_engine.data.load_samples` reads)."""
        return self._file(TRAIN_FILE, "prompts")

    def eval_path(self) -> Path | None:
        """The eval prompts, when a separate file was given or a share was carved off; else None."""
        return self._file(EVAL_FILE, "prompts")

    def sft_path(self) -> Path | None:
        """SFT demonstrations (JSONL that `arpo_engine.data.load_sft_demos` reads)."""
        return self._file(SFT_FILE, "sft")

    def corpus_path(self) -> Path | None:
        """Search corpus documents (JSONL that `arpo_engine.tools.search` reads)."""
        return self._file(CORPUS_FILE, "corpus")

    def corpus_index_path(self) -> Path | None:
        """The BM25 index folder built once on upload, beside the corpus."""
        return self._file(CORPUS_INDEX_DIR, "corpus")
