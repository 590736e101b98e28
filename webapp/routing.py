"""Websocket routes: a run's live events (webapp/runs/consumers.py)."""

from typing import Any

from django.urls import re_path

from webapp.runs.consumers import RunConsumer

websocket_urlpatterns: list[Any] = [
    re_path(r"^ws/runs/(?P<run_id>\d+)/$", RunConsumer.as_asgi()),
]
