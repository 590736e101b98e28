"""Schemathesis against the OpenAPI schema (/api/schema/), in-process, as alice and as charlie.

Each has their own data, made through the services with distinctive names: a dataset, a tool and a
run (alice also a dataset of her team "lab"). Every operation of the schema gets generated requests
as each of them, through Django's WSGI handler inside the test's transaction (so the test database is
the one the app uses). For every response: no 5xx; status code, content type, headers and body
conform to the schema; and nothing in it names the other user's objects. Requests that break the
schema (negative generation, as alice) must never get a 5xx either.

Every example runs in its own savepoint, rolled back after it: what one request deletes or creates
does not leak into the next, and a database error in one request cannot poison the rest.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.webapp import factories as make
from webapp.accounts.models import Team

MAX_EXAMPLES = int(os.environ.get("ARPO_SCHEMATHESIS_EXAMPLES", "15"))
APP = WSGIHandler()
SCHEMA_URL = "/api/schema/?format=json"

# Operations not exercised here, and why (none so far: every operation runs in-process):
EXCLUDED: dict[str, str] = {}


def _load() -> tuple[Any, str]:
    try:
        return schemathesis.openapi.from_wsgi(SCHEMA_URL, APP), ""
    except Exception as exc:  # reported by test_the_schema_loads, not as a collection error
        return None, f"{type(exc).__name__}: {exc}"


SCHEMA, LOAD_ERROR = _load()
OPERATIONS = (
    sorted(op.ok().label for op in SCHEMA.get_all_operations() if op.ok().label not in EXCLUDED)
    if SCHEMA is not None
    else []
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_the_schema_loads() -> None:
    assert SCHEMA is not None, f"GET {SCHEMA_URL} did not give an OpenAPI schema: {LOAD_ERROR}"
    assert len(OPERATIONS) >= 30, OPERATIONS


# --- the cast and their data ---------------------------------------------------------------------------


@dataclass
class Cast:
    users: dict[str, User]
    names: dict[str, list[str]]  # per user: the names of their objects, which nobody else may see

    def hidden_from(self, role: str) -> list[str]:
        return [name for other, names in self.names.items() if other != role for name in names]


def _own_data(user: User, team: Team | None = None) -> list[str]:
    prefix = f"{user.username}_secret"
    dataset = make.dataset(user, name=make.unique(f"{prefix}_dataset"))
    tool = make.tool(user, name=make.unique(f"{prefix}_tool"))
    run = make.run(user, name=make.unique(f"{prefix}_run"), data=dataset, tools=[tool])
    token, _ = make.token(user, name=make.unique(f"{prefix}_token"))
    names = [dataset.name, tool.name, run.name, token.name]
    if team is not None:
        names.append(make.dataset(user, team=team, name=make.unique(f"{prefix}_team_dataset")).name)
        names += [f"/teams/{team.slug}/", f'"slug":"{team.slug}"']
    return names


@pytest.fixture
def cast(alice: User, charlie: User, lab: Team) -> Cast:
    return Cast({"alice": alice, "charlie": charlie}, {"alice": _own_data(alice, lab), "charlie": _own_data(charlie)})


@pytest.fixture
def in_process() -> Iterator[None]:
    """Django's handler closes "old" connections around each request; inside a test's transaction it must not."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def no_other_users_objects(hidden: list[str]) -> Callable[..., None]:
    def check(ctx: Any, response: Any, case: Any) -> None:
        text = response.text or ""
        shown = [name for name in hidden if name in text.replace(" ", "")]
        if shown:
            raise AssertionError(f"the response shows another user's objects: {shown}")

    check.__name__ = "no_other_users_objects"
    return check


# --- the run -------------------------------------------------------------------------------------------


def _exercise(operation: Any, user: User, checks: list[Any], *, mode: Any, examples: int) -> None:
    """Generated requests for one operation as `user`, each in a savepoint rolled back after it."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        with transaction.atomic():
            _, secret = make.token(user)  # per example: an operation may revoke the token it was called with
            response = case.call(headers={"Authorization": f"Token {secret}"})
            try:
                case.validate_response(response, checks=checks)
            finally:
                transaction.set_rollback(True)

    run()


@pytest.mark.parametrize("role", ["alice", "charlie"])
@pytest.mark.parametrize("label", OPERATIONS)
def test_operation(label: str, role: str, cast: Cast, in_process: None) -> None:
    """Valid requests: no 5xx, every response as the schema says, nothing of the other user's."""
    leak_check = no_other_users_objects([n.replace(" ", "") for n in cast.hidden_from(role)])
    operation = SCHEMA.find_operation_by_label(label)
    _exercise(operation, cast.users[role], [*CHECKS, leak_check], mode=GenerationMode.POSITIVE, examples=MAX_EXAMPLES)


@pytest.mark.parametrize("label", OPERATIONS)
def test_operation_with_invalid_input(label: str, cast: Cast, in_process: None) -> None:
    """Requests that break the schema (wrong types, missing fields …): never a 5xx, never another's objects."""
    leak_check = no_other_users_objects([n.replace(" ", "") for n in cast.hidden_from("alice")])
    operation = SCHEMA.find_operation_by_label(label)
    # An operation with nothing that can be made invalid (no parameters, no body) is Unsatisfiable: nothing to test.
    with contextlib.suppress(Unsatisfiable):
        _exercise(operation, cast.users["alice"], [not_a_server_error, leak_check], mode=GenerationMode.NEGATIVE,
                  examples=max(5, MAX_EXAMPLES // 2))  # fmt: skip
