"""REST API routes of the datasets app, mounted under /api/v1/."""

from typing import Any

urlpatterns: list[Any] = []
