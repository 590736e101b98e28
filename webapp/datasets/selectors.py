"""Reads of datasets, always scoped to what the user may see (webapp.core.ownership)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from webapp.core.ownership import get_visible, visible_to

from .models import Dataset


def dataset_list(*, user: Any, kind: str | None = None, team: Any | None = None) -> QuerySet[Dataset]:
    """Datasets `user` may see, newest first; `team` (id or slug) narrows to one team's, "" / "me" to the user's."""
    qs = visible_to(Dataset, user).select_related("owner_user", "owner_team", "created_by")
    if kind:
        qs = qs.filter(kind=kind)
    if team == "me":
        qs = qs.filter(owner_user=user)
    elif team not in (None, ""):
        qs = qs.filter(owner_team__slug=team) if not str(team).isdigit() else qs.filter(owner_team_id=int(team))
    return qs


def dataset_get(*, user: Any, dataset_id: Any) -> Dataset:
    """One dataset `user` may see; NotFound (404) otherwise, the same answer as for a missing one."""
    return get_visible(dataset_list(user=user), user, pk=dataset_id)
