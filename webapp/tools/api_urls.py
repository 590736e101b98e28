"""REST API routes of the tools app, mounted under /api/v1/."""

from typing import Any

urlpatterns: list[Any] = []
