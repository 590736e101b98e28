"""Teams: creation, invitations by username and e-mail, roles, leaving, deleting, and the last-owner rule."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from webapp.accounts import services
from webapp.accounts.models import Invitation, Membership, Team
from webapp.core.errors import DomainError, NotFound, PermissionDenied

pytestmark = pytest.mark.django_db
OWNER, MEMBER = Membership.Role.OWNER, Membership.Role.MEMBER


def role_of(team: Team, user: User) -> str | None:
    membership = Membership.objects.filter(team=team, user=user).first()
    return membership.role if membership else None


def test_team_create_makes_the_creator_owner_and_a_unique_slug(alice: User, bob: User) -> None:
    first = services.team_create(user=alice, name="Tool  Users")
    second = services.team_create(user=bob, name="Tool users")
    assert (first.slug, second.slug) == ("tool-users", "tool-users-2")
    assert first.name == "Tool Users"
    assert role_of(first, alice) == OWNER and role_of(second, bob) == OWNER


def test_team_slug_is_never_digits_only_nor_a_reserved_word(alice: User) -> None:
    assert services.team_create(user=alice, name="2024").slug == "team-2024"
    assert services.team_create(user=alice, name="New").slug == "team-new"
    assert services.team_create(user=alice, name="!!!").slug == "team"


def test_team_create_refuses_an_empty_name(alice: User) -> None:
    with pytest.raises(DomainError) as info:
        services.team_create(user=alice, name="   ")
    assert "name" in info.value.fields
    assert not Team.objects.exists()


def test_owner_invites_an_existing_user_by_username(lab: Team, alice: User, charlie: User) -> None:
    result = services.team_invite(actor=alice, team=lab, username="Charlie", role=OWNER)
    assert isinstance(result, Membership)
    assert role_of(lab, charlie) == OWNER


def test_invite_by_email_of_an_existing_user_adds_them_now(lab: Team, alice: User, charlie: User) -> None:
    result = services.team_invite(actor=alice, team=lab, email="CHARLIE@example.com")
    assert isinstance(result, Membership)
    assert role_of(lab, charlie) == MEMBER
    assert not Invitation.objects.exists()


def test_invite_by_unknown_email_stores_an_invitation_claimed_at_signup(lab: Team, alice: User) -> None:
    result = services.team_invite(actor=alice, team=lab, email="Dora@Example.com", role=OWNER)
    assert isinstance(result, Invitation)
    dora = services.user_signup(username="dora", email="dora@example.com", password="plum-orchard-lantern-42")
    assert role_of(lab, dora) == OWNER
    assert not Invitation.objects.exists()


def test_invite_by_unknown_username_names_the_problem(lab: Team, alice: User) -> None:
    with pytest.raises(DomainError) as info:
        services.team_invite(actor=alice, team=lab, username="nobody")
    assert info.value.code == "no_such_user"


def test_inviting_a_member_again_is_refused(lab: Team, alice: User, bob: User) -> None:
    with pytest.raises(DomainError) as info:
        services.team_invite(actor=alice, team=lab, username="bob")
    assert info.value.code == "already_member"


def test_members_cannot_invite(lab: Team, bob: User, charlie: User) -> None:
    with pytest.raises(PermissionDenied):
        services.team_invite(actor=bob, team=lab, username="charlie")
    assert role_of(lab, charlie) is None


def test_outsiders_get_not_found_for_every_team_action(lab: Team, charlie: User, bob: User) -> None:
    with pytest.raises(NotFound):
        services.team_invite(actor=charlie, team=lab, username="charlie")
    with pytest.raises(NotFound):
        services.membership_set_role(actor=charlie, team=lab, user=bob, role=OWNER)
    with pytest.raises(NotFound):
        services.team_delete(actor=charlie, team=lab)


def test_owner_changes_a_role(lab: Team, alice: User, bob: User) -> None:
    services.membership_set_role(actor=alice, team=lab, user=bob, role=OWNER)
    assert role_of(lab, bob) == OWNER


def test_members_cannot_change_roles(lab: Team, bob: User) -> None:
    with pytest.raises(PermissionDenied):
        services.membership_set_role(actor=bob, team=lab, user=bob, role=OWNER)
    assert role_of(lab, bob) == MEMBER


def test_the_last_owner_cannot_be_demoted(lab: Team, alice: User) -> None:
    with pytest.raises(DomainError) as info:
        services.membership_set_role(actor=alice, team=lab, user=alice, role=MEMBER)
    assert info.value.code == "last_owner"
    assert role_of(lab, alice) == OWNER


def test_the_last_owner_cannot_leave(lab: Team, alice: User) -> None:
    with pytest.raises(DomainError) as info:
        services.team_leave(actor=alice, team=lab)
    assert info.value.code == "last_owner"
    assert role_of(lab, alice) == OWNER


def test_an_owner_may_leave_when_another_owner_remains(lab: Team, alice: User, bob: User) -> None:
    services.membership_set_role(actor=alice, team=lab, user=bob, role=OWNER)
    services.team_leave(actor=alice, team=lab)
    assert role_of(lab, alice) is None and role_of(lab, bob) == OWNER


def test_a_member_may_leave(lab: Team, bob: User) -> None:
    services.team_leave(actor=bob, team=lab)
    assert role_of(lab, bob) is None


def test_owner_removes_a_member_but_a_member_cannot_remove_the_owner(lab: Team, alice: User, bob: User) -> None:
    with pytest.raises(PermissionDenied):
        services.membership_remove(actor=bob, team=lab, user=alice)
    services.membership_remove(actor=alice, team=lab, user=bob)
    assert role_of(lab, bob) is None


def test_only_owners_delete_a_team(lab: Team, alice: User, bob: User) -> None:
    with pytest.raises(PermissionDenied):
        services.team_delete(actor=bob, team=lab)
    services.team_delete(actor=alice, team=lab)
    assert not Team.objects.filter(pk=lab.pk).exists()


# --- pages ---------------------------------------------------------------------------------------------


def test_team_page_lists_members_with_roles(client: Client, lab: Team, bob: User) -> None:
    client.force_login(bob)
    body = client.get(reverse("accounts:team", args=[lab.slug])).content.decode()
    assert "alice" in body and "bob" in body and "Owner" in body
    assert "Invite someone" not in body  # members do not see owner controls


def test_outsider_gets_404_on_every_team_page(client: Client, lab: Team, charlie: User, bob: User) -> None:
    client.force_login(charlie)
    assert client.get(reverse("accounts:team", args=[lab.slug])).status_code == 404
    assert client.get(reverse("accounts:team_delete", args=[lab.slug])).status_code == 404
    posts = [
        reverse("accounts:team_invite", args=[lab.slug]),
        reverse("accounts:member_role", args=[lab.slug, bob.pk]),
        reverse("accounts:member_remove", args=[lab.slug, bob.pk]),
        reverse("accounts:team_leave", args=[lab.slug]),
        reverse("accounts:team_delete", args=[lab.slug]),
    ]
    for url in posts:
        assert client.post(url, {"who": "charlie", "role": "owner", "confirm": lab.slug}).status_code == 404, url
    assert role_of(lab, charlie) is None and Team.objects.filter(pk=lab.pk).exists()


def test_missing_team_page_is_404(client: Client, alice: User) -> None:
    client.force_login(alice)
    assert client.get(reverse("accounts:team", args=["no-such-team"])).status_code == 404


def test_create_team_page_flow(client: Client, alice: User) -> None:
    client.force_login(alice)
    response = client.post(reverse("accounts:team_create"), {"team-name": "Search agents"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("accounts:team", args=["search-agents"])
    assert "You are its owner" in response.content.decode()


def test_invite_page_flow_by_email_shows_the_pending_invitation(client: Client, lab: Team, alice: User) -> None:
    client.force_login(alice)
    response = client.post(
        reverse("accounts:team_invite", args=[lab.slug]), {"who": "dora@example.com", "role": "member"}, follow=True
    )
    body = response.content.decode()
    assert "Invitation for dora@example.com saved" in body
    assert "Pending invitations" in body


def test_demoting_the_last_owner_on_the_page_shows_a_clear_error(client: Client, lab: Team, alice: User) -> None:
    client.force_login(alice)
    response = client.post(reverse("accounts:member_role", args=[lab.slug, alice.pk]), {"role": "member"}, follow=True)
    assert "needs at least one owner" in response.content.decode()
    assert role_of(lab, alice) == OWNER


def test_owner_cancels_an_invitation(client: Client, lab: Team, alice: User) -> None:
    invitation = Invitation.objects.create(team=lab, email="dora@example.com", invited_by=alice)
    client.force_login(alice)
    client.post(reverse("accounts:invitation_cancel", args=[lab.slug, invitation.pk]))
    assert not Invitation.objects.exists()


def test_delete_page_needs_the_slug_typed(client: Client, lab: Team, alice: User) -> None:
    client.force_login(alice)
    url = reverse("accounts:team_delete", args=[lab.slug])
    assert client.post(url, {"confirm": "nope"}).status_code == 400
    assert Team.objects.filter(pk=lab.pk).exists()
    response = client.post(url, {"confirm": lab.slug})
    assert response.status_code == 302 and response["Location"] == reverse("accounts:teams")
    assert not Team.objects.filter(pk=lab.pk).exists()


def test_member_leaves_from_the_page(client: Client, lab: Team, bob: User) -> None:
    client.force_login(bob)
    response = client.post(reverse("accounts:team_leave", args=[lab.slug]))
    assert response["Location"] == reverse("accounts:teams")
    assert role_of(lab, bob) is None


@pytest.mark.django_db(transaction=True)
def test_two_owners_leaving_at_once_leave_one_owner_behind(lab: Team, alice: User, bob: User) -> None:
    """alice leaves inside a transaction that stays open while bob tries to leave too.

    Without the team lock bob would count alice (her delete is not committed yet) and leave as well.
    """
    import threading
    import time

    from django.db import connection, transaction

    services.membership_set_role(actor=alice, team=lab, user=bob, role=OWNER)
    alice_left = threading.Event()
    outcome: dict[str, str] = {}

    def alice_leaves() -> None:
        try:
            with transaction.atomic():
                services.team_leave(actor=alice, team=lab.slug)
                alice_left.set()
                time.sleep(0.5)  # bob's attempt runs now, while this transaction holds the lock
        finally:
            connection.close()

    def bob_leaves() -> None:
        alice_left.wait(timeout=10)
        try:
            services.team_leave(actor=bob, team=lab.slug)
            outcome["bob"] = "left"
        except DomainError as exc:
            outcome["bob"] = exc.code
        finally:
            connection.close()

    threads = [threading.Thread(target=alice_leaves), threading.Thread(target=bob_leaves)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcome == {"bob": "last_owner"}
    assert list(Membership.objects.filter(team=lab, role=OWNER).values_list("user__username", flat=True)) == ["bob"]
