"""Reads of accounts and teams. A team is visible only to its members; anything else is NotFound."""

from __future__ import annotations

from typing import Any

from django.db.models import BooleanField, Case, Count, OuterRef, QuerySet, Subquery, Value, When
from django.db.models.functions import Now

from webapp.core.errors import NotFound

from .models import ApiToken, Invitation, Membership, Team


def teams_for(*, user: Any) -> QuerySet[Team]:
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(memberships__user=user).order_by("name")


def team_get(*, user: Any, team: Any) -> Team:
    """A team the user belongs to, by instance, id or slug; NotFound otherwise."""
    qs = teams_for(user=user)
    try:
        if isinstance(team, Team):
            return qs.get(pk=team.pk)
        if isinstance(team, int) or (isinstance(team, str) and team.isdigit()):
            return qs.get(pk=int(team))
        return qs.get(slug=str(team))
    except Team.DoesNotExist:
        raise NotFound("team") from None


def membership_get(*, user: Any, team: Team) -> Membership | None:
    return Membership.objects.filter(user=user, team=team).first()


def teams_with_role(*, user: Any) -> QuerySet[Team]:
    """The user's teams, each annotated with `my_role` and `member_count`."""
    mine = Membership.objects.filter(team=OuterRef("pk"), user=user).values("role")[:1]
    # A subquery, not Count("memberships"): teams_for already joins memberships filtered to this user.
    count = Membership.objects.filter(team=OuterRef("pk")).values("team").annotate(n=Count("pk")).values("n")
    return teams_for(user=user).annotate(my_role=Subquery(mine), member_count=Subquery(count))


def team_members(*, team: Team) -> QuerySet[Membership]:
    """Owners first, then by username."""
    return (
        Membership.objects.filter(team=team)
        .select_related("user")
        .order_by(Case(When(role=Membership.Role.OWNER, then=0), default=1), "user__username")
    )


def team_invitations(*, team: Team) -> QuerySet[Invitation]:
    return Invitation.objects.filter(team=team).select_related("invited_by").order_by("email")


def tokens_for(*, user: Any) -> QuerySet[ApiToken]:
    """The user's API tokens, newest first (expired ones too, marked by `expiry` in the past)."""
    expired = Case(When(expiry__lt=Now(), then=Value(True)), default=Value(False), output_field=BooleanField())
    return ApiToken.objects.filter(user=user).annotate(expired=expired).order_by("-created")
