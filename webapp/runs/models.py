"""Runs and the catalogue of base models the service offers.

`BaseModel` rows are managed by admins (Django admin); a GPU deployment adds its own. `path` is what
`arpo_engine.config.ModelConfig.path` takes: a bundled model name, or a Hugging Face folder — relative
paths resolve against the service's var/ folder, so no machine path is stored in the database.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

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
    twin_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="twins",
        help_text="The run this one is the GRPO baseline of (\"Compare with GRPO\").",
    )  # fmt: skip
    # --- execution (Service II): written by run_launch/run_cancel and by the worker's relay ---
    status_reason = models.TextField(blank=True, help_text="Why the run failed or stopped, for a person to act on.")
    phase = models.CharField(max_length=32, blank=True, help_text="What the engine does now (loading, sft …).")
    stop_requested = models.BooleanField(default=False, help_text="Cancel asked; the relay passes it to the engine.")
    steps_done = models.PositiveIntegerField(default=0)
    last_seq = models.PositiveBigIntegerField(default=0, help_text="The newest event sequence number recorded.")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times the run's Ray actor was started.")
    launched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # --- compute used (worker/usage.py): totals over the run's attempts, the detail per attempt in `usage` ---
    wall_seconds = models.FloatField(default=0.0, help_text="Seconds the run's actors ran the engine.")
    cpu_seconds = models.FloatField(default=0.0, help_text="CPU time the run's actor processes used (user + system).")
    gpu_seconds = models.FloatField(default=0.0, help_text="GPUs Ray assigned to the run's actors × their seconds.")
    usage = models.JSONField(
        default=dict, blank=True, help_text="{attempt: {wall_s, cpu_s, gpu_s, cpus, gpus}}: what each actor used."
    )

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
    def public_config(self) -> dict[str, Any]:
        """The resolved config as users see it (API, YAML export, run page): no path of the server in it."""
        from .recording import scrub_tree

        return scrub_tree(self.config)  # type: ignore[no-any-return]

    @property
    def is_draft(self) -> bool:
        return self.status == self.Status.DRAFT

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    def checkpoint_dir(self) -> Path:
        """Where the engine writes this run's checkpoints (config `checkpoint.dir`)."""
        return Path(settings.MEDIA_ROOT) / "runs" / str(self.uid)


TERMINAL = frozenset({Run.Status.SUCCEEDED, Run.Status.FAILED, Run.Status.CANCELLED})
ACTIVE = frozenset(
    {Run.Status.QUEUED, Run.Status.STARTING, Run.Status.RUNNING, Run.Status.CANCELLING, Run.Status.RESUMING}
)


class RunEvent(models.Model):
    """One event of a run as the engine emitted it, numbered per run (`seq` from 1, no gaps, no repeats).

    The stream a reconnecting browser replays ("everything after N"). Rollout trees keep only a summary
    here (their body is in RolloutTree); `private` events (tracebacks) are shown to the run's owner only.
    """

    class Kind(models.TextChoices):
        METRICS = "metrics", "Metrics"
        ROLLOUT = "rollout", "Rollout tree"
        EVAL = "eval", "Evaluation"
        CHECKPOINT = "checkpoint", "Checkpoint saved"
        LOG = "log", "Log line"
        PHASE = "phase", "Phase"
        STATUS = "status", "Status"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    step = models.IntegerField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    private = models.BooleanField(default=False)
    emitted_at = models.DateTimeField(help_text="When the engine emitted it (the actor's clock).")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="runs_runevent_one_seq")]


class MetricPoint(models.Model):
    """The metrics of one step (PRODUCT.md's vocabulary). A step the engine redoes after a resume replaces its row."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metric_points")
    step = models.PositiveIntegerField()
    seq = models.PositiveBigIntegerField()
    values = models.JSONField(default=dict)
    recorded_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run", "step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="runs_metricpoint_one_step")]


class RolloutTree(models.Model):
    """One prompt's rollout tree at one step (a bounded, size-capped sample of each step's prompts)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="rollout_trees")
    step = models.PositiveIntegerField()
    prompt_index = models.PositiveIntegerField()
    seq = models.PositiveBigIntegerField()
    reward_mean = models.FloatField(default=0.0)
    size_bytes = models.PositiveIntegerField(default=0)
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["run", "step", "prompt_index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "step", "prompt_index"], name="runs_rollouttree_one_prompt")
        ]


class Checkpoint(models.Model):
    """A saved step: its download folder (relative to the media root) and the metrics it was saved with."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="checkpoints")
    step = models.PositiveIntegerField()
    seq = models.PositiveBigIntegerField()
    folder = models.CharField(max_length=500, help_text="Relative to MEDIA_ROOT.")
    metrics = models.JSONField(default=dict, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="runs_checkpoint_one_step")]


class RunLease(models.Model):
    """Who executes a run. At most one lease of a run is live (not released, not expired); rows are kept
    as the run's history, so a test (or a person) can check it never ran twice at once."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="leases")
    holder = models.CharField(max_length=200, help_text="host:pid:task of the worker that holds it.")
    acquired_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=32, blank=True, help_text="finished, expired, handed over …")

    class Meta:
        ordering = ["run", "acquired_at", "id"]
        indexes = [models.Index(fields=["run", "released_at"])]


class Preflight(models.Model):
    """A "Check" of a run before it spends compute: a few rollouts with its starting model, tools and scorer
    (arpo_engine.preflight), run on the worker's short queue. `results` is the engine's report."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="preflights")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    results = models.JSONField(default=dict, blank=True, help_text="Metrics, the rendered prompt, sample paths.")
    warnings = models.JSONField(default=list, blank=True, help_text="[{code, message}]: what to do before launching.")
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per phase (load, rollout, reward, total).")
    error = models.TextField(blank=True, help_text="Why the check could not run, for a person to act on.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)
