"""Tools a run's agent may call: an OpenAI function-tool schema, an implementation kind and its limits.

`Tool` holds what `arpo_engine.config.ToolConfig` needs (see `selectors.tool_configs_for`) plus, for
`http` tools, secret headers encrypted at rest (`secrets.py`). The secrets never enter a ToolConfig,
a page, an API response or a log: only the header names are shown. `ToolTrial` is one "try it" call,
executed by the worker (`worker.tasks.tool_try`), never in the web process.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from webapp.core.ownership import Owned


class Tool(Owned):
    class Kind(models.TextChoices):
        PYTHON = "python", "Python (sandboxed)"
        SEARCH = "search", "Search (corpus)"
        CALCULATOR = "calculator", "Calculator"
        HTTP = "http", "HTTP endpoint"

    name = models.CharField(max_length=64, help_text="The name the model calls; also its tag in the tags format.")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    description = models.TextField(blank=True, help_text="Shown to the model; replaces the schema's description.")
    schema = models.JSONField(help_text='OpenAI function-tool schema {"type": "function", "function": {…}}.')
    # Limits; null means the engine's default for the kind.
    timeout_s = models.FloatField(null=True, blank=True, help_text="Wall-clock seconds per call (python, http).")
    memory_mb = models.PositiveIntegerField(null=True, blank=True, help_text="Memory per process in MiB (python).")
    max_output_bytes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Output bytes kept before the call is cut (python); response cap (http)."
    )
    top_k = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Passages returned (search).")
    corpus = models.ForeignKey(
        "datasets.Dataset", null=True, blank=True, on_delete=models.PROTECT, related_name="search_tools",
        limit_choices_to={"kind": "corpus"}, help_text="The search corpus (search).",
    )  # fmt: skip
    url = models.URLField(max_length=500, blank=True, help_text="Endpoint the arguments are POSTed to (http).")
    allowed_hosts = models.JSONField(
        default=list, blank=True, help_text="Host names the call (and any redirect) may reach (http)."
    )
    secret_headers_encrypted = models.TextField(blank=True, help_text="Fernet token of the headers (http).")
    secret_header_names = models.JSONField(default=list, blank=True, help_text="Names only, for display.")

    class Meta(Owned.Meta):
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def has_secrets(self) -> bool:
        return bool(self.secret_headers_encrypted)


class ToolTrial(models.Model):
    """One "try it" call of a tool with typed-in arguments, run by the worker."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    tool = models.ForeignKey(Tool, on_delete=models.CASCADE, related_name="trials")
    arguments = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    output = models.TextField(blank=True)
    error = models.TextField(blank=True, help_text="The tool's error code and, for failures, a readable reason.")
    latency_ms = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)
