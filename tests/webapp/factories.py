"""One object of each kind, made through the real services (no model.objects.create shortcuts).

Datasets are built from the demo files in var/demo/; their files move into place when the creating
transaction commits, so `dataset` runs the on-commit callbacks as a real commit would. Every helper
takes the acting user and, optionally, a team the object will belong to.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase

from webapp.accounts import services as accounts
from webapp.accounts.models import ApiToken, Invitation, Membership, Team
from webapp.core.ownership import owner_for
from webapp.datasets.models import Dataset
from webapp.datasets.services import dataset_create
from webapp.runs.models import Run
from webapp.runs.services import run_create
from webapp.tools.models import Tool, ToolTrial
from webapp.tools.services import tool_create, tool_trial_create

DEMO = Path(__file__).resolve().parents[2] / "var" / "demo"
_DEMO_FILES = {"prompts": "train.jsonl", "sft": "sft_tags.jsonl", "corpus": "corpus.jsonl"}
_counter = itertools.count(1)


def unique(prefix: str) -> str:
    """A name no other object in the test has (tool names must also be identifiers)."""
    return f"{prefix}_{next(_counter)}"


def demo_file(name: str, rows: int) -> SimpleUploadedFile:
    lines = (DEMO / name).read_text().splitlines()[:rows]
    return SimpleUploadedFile(name, ("\n".join(lines) + "\n").encode(), content_type="application/jsonl")


def dataset(user: Any, *, team: Team | None = None, kind: str = "prompts", name: str = "", rows: int = 12) -> Dataset:
    """A dataset of the demo data, stored through `dataset_create` with its files in place."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return dataset_create(
            user=user,
            owner=owner_for(user, team),
            kind=kind,
            name=name or unique(f"{kind}_dataset"),
            file=demo_file(_DEMO_FILES[kind], rows),
        )


def tool(user: Any, *, team: Team | None = None, name: str = "", kind: str = "calculator", **fields: Any) -> Tool:
    """A tool through `tool_create` (a calculator unless told: it needs no corpus and no network)."""
    return tool_create(user=user, team=team, name=name or unique("calc"), kind=kind, **fields)


def trial(user: Any, tool_: Tool) -> ToolTrial:
    """A queued "try it" call (its on-commit task is not sent: the test transaction never commits)."""
    properties = tool_.schema["function"]["parameters"]["properties"]
    arguments = {key: "1 + 1" for key in properties}
    return tool_trial_create(user=user, tool=tool_, arguments=arguments)


def run(
    user: Any,
    *,
    team: Team | None = None,
    name: str = "",
    data: Dataset | None = None,
    tools: list[Tool] | None = None,
    base_model: str = "smollm2-135m",
) -> Run:
    """A draft run from the ARPO preset over `data` (a new prompts dataset of the same owner if not given)."""
    data = data if data is not None else dataset(user, team=team)
    return run_create(
        user=user,
        team=team.slug if team is not None else None,
        name=name or unique("run"),
        preset="arpo_paper",
        base_model=base_model,
        dataset=data,
        tools=[t.pk for t in tools or []],
    )


def token(user: Any, *, name: str = "") -> tuple[ApiToken, str]:
    """An API token (row, secret) through `token_create`."""
    return accounts.token_create(user=user, name=name or unique("token"), expires_in_days=30)


def team(user: Any, *, name: str = "") -> Team:
    """A team through `team_create`; `user` is its owner."""
    return accounts.team_create(user=user, name=name or unique("team"))


def member(owner: Any, team_: Team, user: Any, *, role: str = "member") -> Membership:
    """Add an existing user to the team through `team_invite` (by username)."""
    result = accounts.team_invite(actor=owner, team=team_, username=user.username, role=role)
    assert isinstance(result, Membership)
    return result


def invitation(owner: Any, team_: Team, *, email: str = "") -> Invitation:
    """A pending e-mail invitation through `team_invite`."""
    result = accounts.team_invite(actor=owner, team=team_, email=email or f"{unique('guest')}@example.com")
    assert isinstance(result, Invitation)
    return result
