"""The accounts REST API: sign-in for a token (throttled), me, tokens, teams and members, errors in one shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.webapp.conftest import PASSWORD
from webapp.accounts.models import ApiToken, Invitation, Membership, Team

pytestmark = pytest.mark.django_db
ApiFor = Callable[[User | None], APIClient]


def test_login_returns_a_token_expiry_and_user(alice: User) -> None:
    response = APIClient().post("/api/v1/auth/login/", {"username": "alice", "password": PASSWORD}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["token"].startswith("arpo_") and body["expiry"]
    assert body["user"] == {"id": alice.pk, "username": "alice", "email": "alice@example.com"}
    me = APIClient()
    me.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert me.get("/api/v1/me/").json()["username"] == "alice"


def test_login_with_a_wrong_password_is_one_error_shape(alice: User) -> None:
    response = APIClient().post("/api/v1/auth/login/", {"username": "alice", "password": "x"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"message": "Wrong username or password.", "code": "invalid_credentials"}
    assert not ApiToken.objects.exists()


def test_login_missing_fields_names_them(db: None) -> None:
    response = APIClient().post("/api/v1/auth/login/", {}, format="json")
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"username", "password"}


def test_login_is_throttled_after_the_limit(alice: User, settings: Any) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"sign_in": "3/min"}}
    cache.clear()
    client = APIClient()
    codes = [
        client.post("/api/v1/auth/login/", {"username": "alice", "password": "wrong"}, format="json").status_code
        for _ in range(4)
    ]
    assert codes == [400, 400, 400, 429]
    last = client.post("/api/v1/auth/login/", {"username": "alice", "password": PASSWORD}, format="json")
    assert last.status_code == 429 and last.json()["code"] == "throttled" and int(last["Retry-After"]) > 0
    cache.clear()


def test_logout_revokes_the_token_used(alice: User, api_for: ApiFor) -> None:
    client = api_for(alice)
    assert client.post("/api/v1/auth/logout/").status_code == 204
    assert not ApiToken.objects.filter(user=alice).exists()
    assert client.get("/api/v1/me/").status_code == 401


def test_me_lists_my_teams_with_roles(lab: Team, bob: User, api_for: ApiFor) -> None:
    body = api_for(bob).get("/api/v1/me/").json()
    assert body["teams"] == [{"slug": "lab", "name": "Lab", "role": "member"}]


def test_anonymous_gets_401_in_the_error_shape(db: None) -> None:
    response = APIClient().get("/api/v1/me/")
    assert response.status_code == 401
    assert set(response.json()) == {"message", "code"}


def test_tokens_create_shows_the_token_once_then_lists_without_it(alice: User, api_for: ApiFor) -> None:
    client = api_for(alice)
    created = client.post("/api/v1/tokens/", {"name": "ci", "expires_in_days": None}, format="json")
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("arpo_") and created.json()["expiry"] is None
    listed = client.get("/api/v1/tokens/").json()
    assert listed["count"] == 2
    assert token not in str(listed)
    assert {t["name"] for t in listed["results"]} == {"ci", "test"}
    assert all("token" not in t for t in listed["results"])


def test_tokens_create_refuses_an_odd_expiry(alice: User, api_for: ApiFor) -> None:
    response = api_for(alice).post("/api/v1/tokens/", {"name": "ci", "expires_in_days": 12}, format="json")
    assert response.status_code == 400
    assert "expires_in_days" in response.json()["fields"]


def test_tokens_revoke_and_outsider_gets_404(alice: User, charlie: User, api_for: ApiFor) -> None:
    created = api_for(alice).post("/api/v1/tokens/", {"name": "ci"}, format="json").json()
    key = created["token_key"]
    assert api_for(charlie).delete(f"/api/v1/tokens/{key}/").status_code == 404
    assert api_for(alice).delete(f"/api/v1/tokens/{key}/").status_code == 204
    assert not ApiToken.objects.filter(token_key=key).exists()


def test_tokens_list_is_only_mine(alice: User, charlie: User, api_for: ApiFor) -> None:
    api_for(alice)
    assert api_for(charlie).get("/api/v1/tokens/").json()["count"] == 1


def test_teams_create_list_and_retrieve(alice: User, api_for: ApiFor) -> None:
    client = api_for(alice)
    created = client.post("/api/v1/teams/", {"name": "Search agents"}, format="json")
    assert created.status_code == 201
    assert created.json()["slug"] == "search-agents" and created.json()["role"] == "owner"
    assert created.json()["member_count"] == 1
    assert [t["slug"] for t in client.get("/api/v1/teams/").json()["results"]] == ["search-agents"]
    assert client.get("/api/v1/teams/search-agents/").json()["name"] == "Search agents"


def test_outsider_gets_404_on_every_team_route(lab: Team, charlie: User, api_for: ApiFor) -> None:
    client = api_for(charlie)
    assert client.get("/api/v1/teams/lab/").status_code == 404
    assert client.get("/api/v1/teams/lab/members/").status_code == 404
    assert client.get("/api/v1/teams/lab/invitations/").status_code == 404
    assert client.post("/api/v1/teams/lab/members/", {"username": "charlie"}, format="json").status_code == 404
    assert client.patch("/api/v1/teams/lab/members/bob/", {"role": "owner"}, format="json").status_code == 404
    assert client.delete("/api/v1/teams/lab/members/bob/").status_code == 404
    assert client.post("/api/v1/teams/lab/leave/").status_code == 404
    assert client.delete("/api/v1/teams/lab/").status_code == 404
    assert client.get("/api/v1/teams/").json()["count"] == 0
    assert Team.objects.filter(pk=lab.pk).exists() and lab.memberships.count() == 2


def test_members_list(lab: Team, bob: User, api_for: ApiFor) -> None:
    body = api_for(bob).get("/api/v1/teams/lab/members/").json()
    assert [(m["username"], m["role"]) for m in body["results"]] == [("alice", "owner"), ("bob", "member")]


def test_invite_by_username_adds_a_member(lab: Team, alice: User, charlie: User, api_for: ApiFor) -> None:
    response = api_for(alice).post("/api/v1/teams/lab/members/", {"username": "charlie"}, format="json")
    assert response.status_code == 201
    assert response.json()["status"] == "added" and response.json()["member"]["username"] == "charlie"
    assert Membership.objects.filter(team=lab, user=charlie).exists()


def test_invite_by_email_without_account_creates_an_invitation(lab: Team, alice: User, api_for: ApiFor) -> None:
    client = api_for(alice)
    response = client.post("/api/v1/teams/lab/members/", {"email": "dora@example.com", "role": "owner"}, format="json")
    assert response.status_code == 201
    assert response.json()["status"] == "invited" and response.json()["invitation"]["role"] == "owner"
    invitations = client.get("/api/v1/teams/lab/invitations/").json()["results"]
    assert [i["email"] for i in invitations] == ["dora@example.com"]
    assert client.delete(f"/api/v1/teams/lab/invitations/{invitations[0]['id']}/").status_code == 204
    assert not Invitation.objects.exists()


def test_invite_needs_exactly_one_of_username_or_email(lab: Team, alice: User, api_for: ApiFor) -> None:
    client = api_for(alice)
    both = client.post("/api/v1/teams/lab/members/", {"username": "bob", "email": "b@example.com"}, format="json")
    assert both.status_code == 400
    assert client.post("/api/v1/teams/lab/members/", {}, format="json").status_code == 400


def test_member_cannot_invite_or_see_invitations(lab: Team, bob: User, api_for: ApiFor) -> None:
    client = api_for(bob)
    response = client.post("/api/v1/teams/lab/members/", {"username": "alice"}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert client.get("/api/v1/teams/lab/invitations/").status_code == 403


def test_patch_role_and_last_owner_rule(lab: Team, alice: User, bob: User, api_for: ApiFor) -> None:
    client = api_for(alice)
    refused = client.patch("/api/v1/teams/lab/members/alice/", {"role": "member"}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "last_owner"
    promoted = client.patch("/api/v1/teams/lab/members/bob/", {"role": "owner"}, format="json")
    assert promoted.status_code == 200 and promoted.json()["role"] == "owner"
    assert client.patch("/api/v1/teams/lab/members/alice/", {"role": "member"}, format="json").status_code == 200


def test_delete_member_and_leave(lab: Team, alice: User, bob: User, api_for: ApiFor) -> None:
    assert api_for(alice).delete("/api/v1/teams/lab/members/alice/").json()["code"] == "last_owner"
    assert api_for(alice).delete("/api/v1/teams/lab/members/bob/").status_code == 204
    assert not Membership.objects.filter(team=lab, user=bob).exists()
    assert api_for(alice).post("/api/v1/teams/lab/leave/").status_code == 400


def test_unknown_member_is_404(lab: Team, alice: User, api_for: ApiFor) -> None:
    assert api_for(alice).delete("/api/v1/teams/lab/members/nobody/").status_code == 404


def test_owner_deletes_the_team_member_cannot(lab: Team, alice: User, bob: User, api_for: ApiFor) -> None:
    assert api_for(bob).delete("/api/v1/teams/lab/").status_code == 403
    assert api_for(alice).delete("/api/v1/teams/lab/").status_code == 204
    assert not Team.objects.filter(pk=lab.pk).exists()


def test_openapi_schema_describes_the_accounts_api(db: None) -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    login = schema["paths"]["/api/v1/auth/login/"]["post"]
    assert set(login["responses"]) == {"200", "400", "429"}
    assert login["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/LoginResponse")
    created = schema["components"]["schemas"]["TokenCreated"]
    assert "token" in created["required"]
    assert "token" not in schema["components"]["schemas"]["Token"]["properties"]
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_teams_list_counts_every_member_and_shows_my_role(lab: Team, bob: User, api_for: ApiFor) -> None:
    [team] = api_for(bob).get("/api/v1/teams/").json()["results"]
    assert (team["slug"], team["role"], team["member_count"]) == ("lab", "member", 2)
