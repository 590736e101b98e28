"""The one module that names channel-layer groups and event types of runs.

Everyone who may see a run listens to `run_group`; tracebacks and other private lines go to
`run_owner_group` only. An event of kind `metrics` travels as type `run.metrics`, handled by a
consumer's `run_metrics` method (STYLE.md), and so on for every kind. The run list listens to one group
per user (personal runs) and one per team (`run_list_groups`), which get a compact `runs.row` per change.
A playground session (webapp/playground) has one group; its events travel as `playground.<kind>`.
"""

from __future__ import annotations


def run_group(run_id: int) -> str:
    return f"run-{int(run_id)}"


def run_owner_group(run_id: int) -> str:
    return f"run-{int(run_id)}-owner"


def runs_user_group(user_id: int) -> str:
    """The run list's live rows of a user's personal runs (webapp/runs/live_list.py)."""
    return f"runs-user-{int(user_id)}"


def runs_team_group(team_id: int) -> str:
    """The run list's live rows of a team's runs: every member's list listens."""
    return f"runs-team-{int(team_id)}"


def run_list_groups(*, owner_user_id: int | None, owner_team_id: int | None) -> list[str]:
    """Where a run's list row goes: its team's group, or its owner's."""
    if owner_team_id is not None:
        return [runs_team_group(owner_team_id)]
    return [runs_user_group(owner_user_id)] if owner_user_id is not None else []


ROW_EVENT = "runs.row"  # a run list row changed; handled by a consumer's `runs_row`


def event_type(kind: str) -> str:
    """The channel message type of an event kind: `metrics` -> `run.metrics`."""
    return f"run.{kind}"


def playground_group(session_id: int) -> str:
    """Everyone watching a playground session (webapp/playground): its numbered answer events."""
    return f"playground-{int(session_id)}"


def playground_event_type(kind: str) -> str:
    """A playground event's channel message type: `model` -> `playground.model` (handled by `playground_model`)."""
    return f"playground.{kind}"
