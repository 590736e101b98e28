"""Tenancy: every dataset, tool, run and checkpoint belongs to one user or one team.

`visible_to` is THE scoped selector: every tenant-owned lookup in the web app goes through it (or
through `get_visible`, which answers NotFound — rendered 404 — to anyone who may not see the object,
exactly as for an object that does not exist). A user sees what they own and what their teams own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.db import models
from django.db.models import Q, QuerySet

from .errors import DomainError, NotFound

M = TypeVar("M", bound="Owned")


class Owned(models.Model):
    owner_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    owner_team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
        constraints = [
            models.CheckConstraint(
                condition=(Q(owner_user__isnull=False) & Q(owner_team__isnull=True))
                | (Q(owner_user__isnull=True) & Q(owner_team__isnull=False)),
                name="%(app_label)s_%(class)s_one_owner",
            )
        ]

    @property
    def owner(self) -> Owner:
        return Owner(user=self.owner_user, team=self.owner_team)

    @property
    def owner_label(self) -> str:
        return self.owner_team.name if self.owner_team_id else self.owner_user.username  # type: ignore[union-attr]


@dataclass(frozen=True)
class Owner:
    """Who a new object will belong to: exactly one of a user or a team."""

    user: Any = None
    team: Any = None

    def fields(self) -> dict[str, Any]:
        return {"owner_user": self.user, "owner_team": self.team}

    def scope_q(self) -> Q:
        """Objects with exactly this owner (for name uniqueness checks and the like)."""
        if self.team is not None:
            return Q(owner_team=self.team)
        return Q(owner_user=self.user, owner_team__isnull=True)


def _team_ids(user: Any) -> QuerySet[Any]:
    from webapp.accounts.models import Membership

    return Membership.objects.filter(user=user).values("team_id")


def visible_to(model_or_qs: type[M] | QuerySet[M], user: Any) -> QuerySet[M]:
    """Everything of this kind that `user` may see; nothing for anonymous users."""
    qs: Any = model_or_qs._default_manager.all() if isinstance(model_or_qs, type) else model_or_qs  # type: ignore[attr-defined]
    if user is None or not user.is_authenticated:
        return qs.none()
    return qs.filter(Q(owner_user=user) | Q(owner_team__in=_team_ids(user)))


def get_visible(model_or_qs: type[M] | QuerySet[M], user: Any, **lookup: Any) -> M:
    """One object `user` may see, or NotFound (404) — the same answer as for a missing object."""
    qs = visible_to(model_or_qs, user)
    try:
        return qs.get(**lookup)
    except (qs.model.DoesNotExist, ValueError, TypeError, DomainError):
        raise NotFound(qs.model._meta.verbose_name) from None


def owner_for(user: Any, team: Any | None) -> Owner:
    """The owner of a new object: the user, or a team the user belongs to (anything else: NotFound)."""
    if team in (None, ""):
        return Owner(user=user)
    from webapp.accounts.selectors import team_get

    return Owner(team=team_get(user=user, team=team))
