"""The cast for web tests: alice (owner) and bob (teammate) share the team "lab"; charlie is an outsider.

Every web test gets a private media root, and API clients authenticate with real knox tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from tests.worker.fixtures import celery_worker  # a real Celery worker on the "short" queue
from webapp.accounts.models import ApiToken, Membership, Team

__all__ = ["celery_worker"]

PASSWORD = "correct-horse-battery-9"


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def _no_throttling(settings: Any) -> None:
    # Throttling has its own tests; elsewhere a burst of requests must not trip it.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"sign_in": None, "upload": None}}


def _user(name: str) -> User:
    return User.objects.create_user(name, f"{name}@example.com", PASSWORD)


@pytest.fixture
def alice(db: None) -> User:
    return _user("alice")


@pytest.fixture
def bob(db: None) -> User:
    return _user("bob")


@pytest.fixture
def charlie(db: None) -> User:
    return _user("charlie")


@pytest.fixture
def lab(alice: User, bob: User) -> Team:
    """alice's team; bob is a member."""
    team = Team.objects.create(name="Lab", slug="lab")
    Membership.objects.create(team=team, user=alice, role=Membership.Role.OWNER)
    Membership.objects.create(team=team, user=bob, role=Membership.Role.MEMBER)
    return team


@pytest.fixture
def api_for() -> Callable[[User | None], APIClient]:
    """An API client for a user, authenticated with a fresh knox token (None: anonymous)."""

    def make(user: User | None) -> APIClient:
        client = APIClient()
        if user is not None:
            _, token = ApiToken.objects.create(user=user, name="test", expiry=None)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        return client

    return make
