"""Sign up, sign in, sign out and password change, through the browser's forms."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from tests.webapp.conftest import PASSWORD
from webapp.accounts.models import Invitation, Membership, Team

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "plum-orchard-lantern-42"


def _signup(client: Client, **overrides: str) -> Any:
    data = {"username": "dora", "email": "dora@example.com", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    return client.post(reverse("accounts:signup"), {**data, **overrides})


def test_signup_creates_the_account_signs_in_and_goes_home(client: Client) -> None:
    response = _signup(client)
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    user = User.objects.get(username="dora")
    assert user.email == "dora@example.com"
    assert user.check_password(NEW_PASSWORD)
    assert client.get(reverse("accounts:teams")).status_code == 200


def test_signup_page_renders_with_a_link_to_sign_in(client: Client) -> None:
    body = client.get(reverse("accounts:signup")).content.decode()
    assert 'name="password2"' in body
    assert reverse("accounts:login") in body


def test_signup_refuses_mismatched_passwords(client: Client) -> None:
    response = _signup(client, password2="something-else-entirely-7")
    assert response.status_code == 200
    assert "didn’t match" in response.content.decode() or "didn't match" in response.content.decode()
    assert not User.objects.filter(username="dora").exists()


def test_signup_applies_the_password_validators(client: Client) -> None:
    response = _signup(client, password1="password", password2="password")
    assert "too common" in response.content.decode()
    assert not User.objects.filter(username="dora").exists()


def test_signup_refuses_an_email_already_in_use(client: Client, alice: User) -> None:
    response = _signup(client, email="ALICE@example.com")
    assert "already exists" in response.content.decode()
    assert not User.objects.filter(username="dora").exists()


def test_signup_refuses_a_taken_username_in_any_case(client: Client, alice: User) -> None:
    response = _signup(client, username="Alice")
    assert response.status_code == 200
    assert not User.objects.filter(username="Alice").exists()


def test_signup_claims_pending_email_invitations(client: Client, lab: Team, alice: User) -> None:
    Invitation.objects.create(team=lab, email="dora@example.com", role=Membership.Role.OWNER, invited_by=alice)
    _signup(client, email="Dora@Example.com")
    dora = User.objects.get(username="dora")
    assert Membership.objects.get(team=lab, user=dora).role == Membership.Role.OWNER
    assert not Invitation.objects.filter(team=lab).exists()


def test_login_page_links_to_signup(client: Client) -> None:
    body = client.get(reverse("accounts:login")).content.decode()
    assert reverse("accounts:signup") in body
    assert 'for="id_username"' in body and 'for="id_password"' in body


def test_login_goes_home(client: Client, alice: User) -> None:
    response = client.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("home")


def test_login_with_a_wrong_password_shows_an_error(client: Client, alice: User) -> None:
    response = client.post(reverse("accounts:login"), {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_login_page_is_throttled_after_the_limit(client: Client, alice: User, settings: Any) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"sign_in": "2/min"}}
    from django.core.cache import cache

    cache.clear()
    codes = [
        client.post(reverse("accounts:login"), {"username": "alice", "password": "x"}).status_code for _ in range(3)
    ]
    assert codes == [200, 200, 429]
    cache.clear()


def test_logout_is_a_post_and_signs_out(client: Client, alice: User) -> None:
    client.force_login(alice)
    assert client.get(reverse("accounts:logout")).status_code == 405
    response = client.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert client.get(reverse("accounts:teams")).status_code == 302  # back to sign-in


def test_password_change_keeps_the_session_and_says_so(client: Client, alice: User) -> None:
    client.force_login(alice)
    response = client.post(
        reverse("accounts:password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse("accounts:teams")
    assert "Your password was changed" in response.content.decode()
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)


def test_password_change_needs_the_old_password(client: Client, alice: User) -> None:
    client.force_login(alice)
    response = client.post(
        reverse("accounts:password_change"),
        {"old_password": "wrong", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 200
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_account_page_lists_my_teams_only(client: Client, lab: Team, charlie: User) -> None:
    Team.objects.create(name="Secret club", slug="secret-club")
    client.force_login(lab.memberships.get(role="owner").user)
    body = client.get(reverse("accounts:teams")).content.decode()
    assert "Lab" in body
    assert "Secret club" not in body
