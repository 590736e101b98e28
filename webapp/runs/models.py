"""Runs and the catalogue of base models the service offers.

`BaseModel` rows are managed by admins (Django admin); a GPU deployment adds its own. `path` is what
`arpo_engine.config.ModelConfig.path` takes: a bundled model name, or a Hugging Face folder — relative
paths resolve against the service's var/ folder, so no machine path is stored in the database.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.db import models

from webapp.core.ownership import Owned


class BaseModel(models.Model):
    slug = models.SlugField(max_length=80, unique=True)
    display_name = models.CharField(max_length=120)
    path = models.CharField(max_length=500, help_text="A bundled model name, or a model folder (relative to var/).")
    description = models.TextField(blank=True)
    parameters_m = models.PositiveIntegerField(default=0, help_text="Size in millions of parameters.")
    max_model_len = models.PositiveIntegerField(default=8192)
    needs_gpu = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=100)

    class Meta:
        ordering = ["position", "display_name"]

    def __str__(self) -> str:
        return self.display_name

    def engine_path(self) -> str:
        """The value for `model.path` in a resolved run config."""
        from arpo_engine.models import BUNDLED

        if self.path in BUNDLED or Path(self.path).is_absolute():
            return self.path
        return str(Path(settings.VAR_DIR) / self.path)

    def local_folder(self) -> Path | None:
        """The prepared Hugging Face folder on this machine, if there is one (tokenizer, chat template)."""
        from arpo_engine.models import BUNDLED, model_dir

        folder = model_dir(self.path) if self.path in BUNDLED else Path(self.engine_path())
        return folder if (folder / "config.json").is_file() else None


class Run(Owned):
    """A run configuration and, from Service II on, its execution.

    `overrides` holds only what the user set (nested, like the engine's YAML); `config` the resolved
    config the engine gets (engine defaults + preset + overrides + the paths, model and tools the
    service fills in). A run is `launchable` only when that config passed `arpo_engine.config` and the
    cross-checks against its dataset and tools; otherwise `errors` lists the problems by dotted key.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        QUEUED = "queued", "Queued"
        STARTING = "starting", "Starting"
        RUNNING = "running", "Running"
        CANCELLING = "cancelling", "Cancelling"
        RESUMING = "resuming", "Resuming"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, help_text="Names the run's folders.")
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    preset = models.CharField(max_length=64, help_text="The engine preset the config starts from (arpo_paper …).")
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="runs")
    # SET_NULL keeps the run (and its stored config) when a dataset is deleted; the run is then not launchable.
    dataset = models.ForeignKey(
        "datasets.Dataset", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    eval_dataset = models.ForeignKey(
        "datasets.Dataset", null=True, blank=True, on_delete=models.SET_NULL, related_name="eval_runs"
    )
    sft_dataset = models.ForeignKey(
        "datasets.Dataset", null=True, blank=True, on_delete=models.SET_NULL, related_name="sft_runs"
    )
    tools = models.ManyToManyField("tools.Tool", blank=True, related_name="runs")
    tool_order = models.JSONField(default=list, blank=True, help_text="Tool ids in the order the config lists them.")
    overrides = models.JSONField(default=dict, blank=True, help_text="What the user set, over the preset (nested).")
    config = models.JSONField(default=dict, blank=True, help_text="The resolved config the engine gets.")
    launchable = models.BooleanField(default=False)
    errors = models.JSONField(
        default=dict, blank=True, help_text="{dotted key or field: [messages]}; empty when valid."
    )
    warnings = models.JSONField(default=list, blank=True, help_text="Problems that do not block a launch.")
    validated_at = models.DateTimeField(null=True, blank=True)
    cloned_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="clones")

    class Meta(Owned.Meta):
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "-created_at"])]

    def __str__(self) -> str:
        return self.name

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def preset_label(self) -> str:
        from .configs import preset_label

        return preset_label(self.preset)

    @property
    def is_draft(self) -> bool:
        return self.status == self.Status.DRAFT

    def checkpoint_dir(self) -> Path:
        """Where the engine writes this run's checkpoints (config `checkpoint.dir`)."""
        return Path(settings.MEDIA_ROOT) / "runs" / str(self.uid)
