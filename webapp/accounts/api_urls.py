"""REST API routes of the accounts app, mounted under /api/v1/."""

from typing import Any

urlpatterns: list[Any] = []
