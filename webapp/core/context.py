"""Template context for every page: the navigation and which section is current."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

NAV = [
    ("datasets", "Datasets", "datasets:list"),
    ("tools", "Tools", "tools:list"),
    ("runs", "Runs", "runs:list"),
]


def navigation(request: HttpRequest) -> dict[str, Any]:
    section = (request.resolver_match.namespace if request.resolver_match else "") or ""
    return {"nav_items": NAV, "nav_section": section}
