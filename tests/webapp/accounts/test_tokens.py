"""API tokens: shown once, stored hashed, named, expiring, revocable, stamped when used."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from webapp.accounts import services
from webapp.accounts.models import ApiToken
from webapp.core.errors import DomainError, NotFound

pytestmark = pytest.mark.django_db


def client_with(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_token_is_stored_hashed_and_prefixed(alice: User) -> None:
    row, token = services.token_create(user=alice, name="laptop", expires_in_days=30)
    assert token.startswith("arpo_")
    stored = ApiToken.objects.get(pk=row.pk)
    assert stored.digest != token and token not in stored.digest
    assert not ApiToken.objects.filter(digest=token).exists()
    assert stored.name == "laptop"


def test_token_expiry_choices(alice: User) -> None:
    row, _ = services.token_create(user=alice, name="ci", expires_in_days=7)
    assert row.expiry is not None
    assert abs(row.expiry - (timezone.now() + dt.timedelta(days=7))) < dt.timedelta(minutes=1)
    never, _ = services.token_create(user=alice, name="forever", expires_in_days=None)
    assert never.expiry is None
    with pytest.raises(DomainError):
        services.token_create(user=alice, name="odd", expires_in_days=12)


def test_a_token_authenticates_its_user(alice: User) -> None:
    _, token = services.token_create(user=alice, name="laptop", expires_in_days=30)
    response = client_with(token).get("/api/v1/me/")
    assert response.status_code == 200
    assert response.json()["username"] == "alice"


def test_an_expired_token_is_refused(alice: User) -> None:
    row, token = services.token_create(user=alice, name="old", expires_in_days=7)
    ApiToken.objects.filter(pk=row.pk).update(expiry=timezone.now() - dt.timedelta(seconds=1))
    response = client_with(token).get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_a_revoked_token_is_refused(alice: User) -> None:
    row, token = services.token_create(user=alice, name="laptop", expires_in_days=30)
    services.token_revoke(user=alice, token_key=row.token_key)
    assert client_with(token).get("/api/v1/me/").status_code == 401


def test_nobody_revokes_another_users_token(alice: User, charlie: User) -> None:
    row, _ = services.token_create(user=alice, name="laptop", expires_in_days=30)
    with pytest.raises(NotFound):
        services.token_revoke(user=charlie, token_key=row.token_key)
    assert ApiToken.objects.filter(pk=row.pk).exists()


def test_last_used_is_stamped_at_most_once_a_minute(alice: User) -> None:
    row, token = services.token_create(user=alice, name="laptop", expires_in_days=30)
    assert row.last_used_at is None
    client = client_with(token)
    client.get("/api/v1/me/")
    first = ApiToken.objects.get(pk=row.pk).last_used_at
    assert first is not None
    client.get("/api/v1/me/")
    assert ApiToken.objects.get(pk=row.pk).last_used_at == first
    ApiToken.objects.filter(pk=row.pk).update(last_used_at=first - dt.timedelta(minutes=2))
    client.get("/api/v1/me/")
    assert ApiToken.objects.get(pk=row.pk).last_used_at > first  # type: ignore[operator]


def test_token_page_shows_the_token_once(client: Client, alice: User) -> None:
    client.force_login(alice)
    response = client.post(reverse("accounts:token_create"), {"token-name": "laptop", "token-expires": "30"})
    body = response.content.decode()
    assert 'class="secret-once"' in body
    row = ApiToken.objects.get(user=alice)
    start = body.index('value="arpo_') + len('value="')
    token = body[start : body.index('"', start)]
    assert row.token_key == token[: len(row.token_key)] and len(token) > 60
    assert response["Cache-Control"] == "no-store"
    again = client.get(reverse("accounts:teams")).content.decode()
    assert token not in again and "secret-once" not in again
    assert "laptop" in again and row.token_key in again


def test_token_page_with_never_expiring_token(client: Client, alice: User) -> None:
    client.force_login(alice)
    client.post(reverse("accounts:token_create"), {"token-name": "ci", "token-expires": "never"})
    assert ApiToken.objects.get(user=alice).expiry is None


def test_token_page_revokes(client: Client, alice: User) -> None:
    row, _ = services.token_create(user=alice, name="laptop", expires_in_days=30)
    client.force_login(alice)
    response = client.post(reverse("accounts:token_revoke", args=[row.token_key]))
    assert response.status_code == 302
    assert not ApiToken.objects.filter(user=alice).exists()


def test_revoking_someone_elses_token_on_the_page_is_404(client: Client, alice: User, charlie: User) -> None:
    row, _ = services.token_create(user=alice, name="laptop", expires_in_days=30)
    client.force_login(charlie)
    assert client.post(reverse("accounts:token_revoke", args=[row.token_key])).status_code == 404
    assert ApiToken.objects.filter(pk=row.pk).exists()


def test_account_page_marks_expired_tokens(client: Client, alice: User) -> None:
    row, _ = services.token_create(user=alice, name="old", expires_in_days=7)
    ApiToken.objects.filter(pk=row.pk).update(expiry=timezone.now() - dt.timedelta(days=1))
    client.force_login(alice)
    assert "badge err" in client.get(reverse("accounts:teams")).content.decode()
