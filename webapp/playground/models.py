"""The playground: a question put to a checkpoint's agent and to the run's base model, and what each did.

A `PlaygroundSession` belongs to whoever owns the run (the same people may see it); `created_by` asked
the question, and may have one session running at a time. Its events are numbered per session like a
run's (`seq` from 1, no gaps, no repeats), so a page that reloads or a socket that reconnects replays
exactly what it missed; `side` says which answer an event belongs to.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from webapp.core.ownership import Owned


class Side(models.TextChoices):
    TRAINED = "trained", "Trained agent"
    BASE = "base", "Base model"


class PlaygroundSession(Owned):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="playground_sessions")
    checkpoint = models.ForeignKey("runs.Checkpoint", on_delete=models.CASCADE, related_name="playground_sessions")
    question = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    sides = models.JSONField(
        default=dict, blank=True, help_text='Each side\'s state: {"trained": "queued" | "running" | "done" | "failed"}.'
    )
    last_seq = models.PositiveBigIntegerField(default=0, help_text="The newest event sequence number recorded.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta(Owned.Meta):
        ordering = ["-created_at", "-id"]
        constraints = [
            *Owned.Meta.constraints,
            # One question at a time per person (services.session_start explains; this guarantees it).
            models.UniqueConstraint(
                fields=["created_by"], condition=Q(status__in=["queued", "running"]), name="playground_one_active"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.run} step {self.checkpoint.step}: {self.question[:40]}"

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)


class PlaygroundEvent(models.Model):
    """One thing that happened in an answer (arpo_engine/playground.py names the kinds and their data)."""

    class Kind(models.TextChoices):
        STATUS = "status", "Status"  # {"state": "loading" | "answering", …}: the side's model is loading, then writes
        MODEL = "model", "Model text"
        TOOL_CALL = "tool_call", "Tool call"
        TOOL_RESULT = "tool_result", "Tool result"
        FINAL = "final", "Final answer"
        ERROR = "error", "Error"

    session = models.ForeignKey(PlaygroundSession, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveBigIntegerField()
    side = models.CharField(max_length=8, choices=Side.choices)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "seq"]
        constraints = [models.UniqueConstraint(fields=["session", "seq"], name="playground_event_one_seq")]
