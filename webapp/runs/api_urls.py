"""REST API routes of the runs app, mounted under /api/v1/."""

from typing import Any

urlpatterns: list[Any] = []
