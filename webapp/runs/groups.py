"""The one module that names channel-layer groups and event types of runs.

Everyone who may see a run listens to `run_group`; tracebacks and other private lines go to
`run_owner_group` only. An event of kind `metrics` travels as type `run.metrics`, handled by a
consumer's `run_metrics` method (STYLE.md), and so on for every kind.
"""

from __future__ import annotations


def run_group(run_id: int) -> str:
    return f"run-{int(run_id)}"


def run_owner_group(run_id: int) -> str:
    return f"run-{int(run_id)}-owner"


def event_type(kind: str) -> str:
    """The channel message type of an event kind: `metrics` -> `run.metrics`."""
    return f"run.{kind}"
