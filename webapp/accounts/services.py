"""Writes for accounts, teams and API tokens. Keyword-only, atomic; every rule lives here, not in views.

Team rules: owners invite, change roles, remove members and delete the team; anyone may leave; a team
never loses its last owner. Membership changes lock the team row, so two owners demoting each other at
the same moment cannot leave the team ownerless.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from webapp.core.errors import DomainError, NotFound, PermissionDenied

from .models import ApiToken, Invitation, Membership, Team
from .selectors import membership_get, team_get

Role = Membership.Role
RESERVED_SLUGS = frozenset({"new"})
TOKEN_EXPIRY_DAYS = (7, 30, 90)  # or None: never
MAX_ACTIVE_TOKENS = 100


@transaction.atomic
def user_signup(*, username: str, email: str, password: str) -> User:
    """A new account; e-mail invitations waiting for its address become memberships."""
    username = username.strip()
    email = User.objects.normalize_email(email.strip())
    if not username:
        raise DomainError("Choose a username.", fields={"username": ["This field is required."]})
    if User.objects.filter(username__iexact=username).exists():
        raise DomainError("That username is taken.", code="taken", fields={"username": ["That username is taken."]})
    try:
        validate_email(email)
    except ValidationError:
        raise DomainError(
            "Enter a valid e-mail address.", fields={"email": ["Enter a valid e-mail address."]}
        ) from None
    if User.objects.filter(email__iexact=email).exists():
        message = "An account with this e-mail address already exists."
        raise DomainError(message, code="taken", fields={"email": [message]})
    try:
        validate_password(password, User(username=username, email=email))
    except ValidationError as exc:
        raise DomainError(exc.messages[0], fields={"password": list(exc.messages)}) from None
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=username, email=email, password=password)
    except IntegrityError:  # the same username signed up a moment ago
        raise DomainError(
            "That username is taken.", code="taken", fields={"username": ["That username is taken."]}
        ) from None
    invitation_claim(user=user)
    return user


@transaction.atomic
def invitation_claim(*, user: User) -> list[Membership]:
    """Turn the pending invitations for the user's e-mail address into memberships."""
    if not user.email:
        return []
    created = []
    for invitation in Invitation.objects.select_for_update().filter(email__iexact=user.email):
        membership, _ = Membership.objects.get_or_create(
            team_id=invitation.team_id, user=user, defaults={"role": invitation.role}
        )
        created.append(membership)
        invitation.delete()
    return created


def _unique_slug(name: str) -> str:
    base = slugify(name)[:60].strip("-") or "team"
    if base.isdigit() or base in RESERVED_SLUGS:
        base = f"team-{base}"  # a digits-only slug would read as a team id
    slug, n = base, 1
    while Team.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def team_create(*, user: User, name: str) -> Team:
    name = " ".join(name.split())
    if not name:
        raise DomainError("Give the team a name.", fields={"name": ["This field is required."]})
    if len(name) > 80:
        raise DomainError("Team names are at most 80 characters.", fields={"name": ["At most 80 characters."]})
    for _ in range(3):  # a concurrent create may take the same slug between the check and the insert
        try:
            with transaction.atomic():
                team = Team.objects.create(name=name, slug=_unique_slug(name))
                break
        except IntegrityError:
            continue
    else:
        raise DomainError("Could not pick a unique address for this team; try another name.", code="conflict")
    Membership.objects.create(team=team, user=user, role=Role.OWNER)
    return team


def _locked_team(*, actor: User, team: Any) -> Team:
    """The team (member-visible, else NotFound), its row locked for the rest of the transaction."""
    found = team_get(user=actor, team=team)
    return Team.objects.select_for_update().get(pk=found.pk)


def _require_owner(*, actor: User, team: Team, doing: str) -> None:
    membership = membership_get(user=actor, team=team)
    if membership is None or membership.role != Role.OWNER:
        raise PermissionDenied(f"Only team owners can {doing}.")


def _check_role(role: str) -> str:
    if role not in Role.values:
        raise DomainError(f"Unknown role {role!r}: use owner or member.", fields={"role": ["Choose owner or member."]})
    return role


def _user_by_email(email: str) -> User | None:
    users = list(User.objects.filter(email__iexact=email, is_active=True)[:2])
    if len(users) > 1:
        raise DomainError("Several accounts use this e-mail address; invite by username instead.", code="ambiguous")
    return users[0] if users else None


@transaction.atomic
def team_invite(
    *, actor: User, team: Any, username: str = "", email: str = "", role: str = "member"
) -> Membership | Invitation:
    """Add an existing user now (by username or e-mail), or invite an unknown e-mail address.

    The invitation is claimed when someone signs up with that address.
    """
    team = _locked_team(actor=actor, team=team)
    _require_owner(actor=actor, team=team, doing="invite people")
    role = _check_role(role)
    username, email = username.strip(), email.strip()
    if bool(username) == bool(email):
        raise DomainError("Give either a username or an e-mail address.", fields={"username": ["Give one of these."]})
    if username:
        target = User.objects.filter(username__iexact=username, is_active=True).first()
        if target is None:
            raise DomainError(
                f"There is no user named {username!r}. To invite someone without an account, use their e-mail.",
                code="no_such_user",
                fields={"username": ["No such user."]},
            )
    else:
        email = User.objects.normalize_email(email)
        try:
            validate_email(email)
        except ValidationError:
            raise DomainError(
                "Enter a valid e-mail address.", fields={"email": ["Enter a valid e-mail address."]}
            ) from None
        target = _user_by_email(email)
        if target is None:
            if Invitation.objects.filter(team=team, email__iexact=email).exists():
                raise DomainError(
                    f"{email} is already invited.", code="already_invited", fields={"email": ["Already invited."]}
                )
            return Invitation.objects.create(team=team, email=email.lower(), role=role, invited_by=actor)
    if Membership.objects.filter(team=team, user=target).exists():
        raise DomainError(f"{target.username} is already a member of {team.name}.", code="already_member")
    return Membership.objects.create(team=team, user=target, role=role)


def _member(*, team: Team, user: Any) -> Membership:
    try:
        if isinstance(user, User):
            return Membership.objects.select_related("user").get(team=team, user=user)
        if isinstance(user, int):
            return Membership.objects.select_related("user").get(team=team, user_id=user)
        return Membership.objects.select_related("user").get(team=team, user__username=str(user))
    except (Membership.DoesNotExist, ValueError):
        raise NotFound("member") from None


def _owners_left_without(team: Team, membership: Membership) -> int:
    return Membership.objects.filter(team=team, role=Role.OWNER).exclude(pk=membership.pk).count()


LAST_OWNER = "A team needs at least one owner: make someone else an owner first, or delete the team."


@transaction.atomic
def membership_set_role(*, actor: User, team: Any, user: Any, role: str) -> Membership:
    team = _locked_team(actor=actor, team=team)
    _require_owner(actor=actor, team=team, doing="change roles")
    role = _check_role(role)
    membership = _member(team=team, user=user)
    if membership.role == Role.OWNER and role != Role.OWNER and _owners_left_without(team, membership) == 0:
        raise DomainError(LAST_OWNER, code="last_owner")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, actor: User, team: Any, user: Any) -> None:
    """Owners remove anyone; a member may remove only themselves (that is leaving)."""
    team = _locked_team(actor=actor, team=team)
    membership = _member(team=team, user=user)
    if membership.user_id != actor.pk:
        _require_owner(actor=actor, team=team, doing="remove members")
    if membership.role == Role.OWNER and _owners_left_without(team, membership) == 0:
        raise DomainError(LAST_OWNER, code="last_owner")
    membership.delete()


def team_leave(*, actor: User, team: Any) -> None:
    membership_remove(actor=actor, team=team, user=actor)


@transaction.atomic
def invitation_cancel(*, actor: User, team: Any, invitation_id: int) -> None:
    team = _locked_team(actor=actor, team=team)
    _require_owner(actor=actor, team=team, doing="cancel invitations")
    deleted, _ = Invitation.objects.filter(team=team, pk=invitation_id).delete()
    if not deleted:
        raise NotFound("invitation")


@transaction.atomic
def team_delete(*, actor: User, team: Any) -> None:
    """Delete the team and everything it owns (datasets, tools, runs cascade)."""
    team = _locked_team(actor=actor, team=team)
    _require_owner(actor=actor, team=team, doing="delete the team")
    team.delete()


def token_expiry(days: int | None) -> dt.timedelta | None:
    if days is None:
        return None
    if days not in TOKEN_EXPIRY_DAYS:
        raise DomainError(
            "Tokens expire after 7, 30 or 90 days, or never.",
            fields={"expires_in_days": ["Choose 7, 30, 90 or never."]},
        )
    return dt.timedelta(days=days)


@transaction.atomic
def token_create(*, user: User, name: str, expires_in_days: int | None) -> tuple[ApiToken, str]:
    """A new API token. Returns the row and the token itself: the only time the token exists in clear."""
    name = " ".join(name.split())
    if not name:
        raise DomainError("Name the token (say where it will be used).", fields={"name": ["This field is required."]})
    if len(name) > 80:
        raise DomainError("Token names are at most 80 characters.", fields={"name": ["At most 80 characters."]})
    expiry = token_expiry(expires_in_days)
    User.objects.select_for_update().filter(pk=user.pk).first()  # serialise concurrent creates for the cap below
    now = timezone.now()
    active = ApiToken.objects.filter(user=user).exclude(expiry__lt=now).count()
    if active >= MAX_ACTIVE_TOKENS:
        raise DomainError(
            f"You have {active} active tokens, the most allowed. Revoke some first.", code="too_many_tokens"
        )
    instance, token = ApiToken.objects.create(user=user, expiry=expiry, name=name)
    return instance, token


@transaction.atomic
def token_revoke(*, user: User, token_key: str) -> None:
    """Revoke one of the user's tokens by its public prefix; anyone else's token is NotFound."""
    deleted, _ = ApiToken.objects.filter(user=user, token_key=token_key).delete()
    if not deleted:
        raise NotFound("token")
