"""Reads of accounts and teams. A team is visible only to its members; anything else is NotFound."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from webapp.core.errors import NotFound

from .models import Membership, Team


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
