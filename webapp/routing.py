"""Websocket routes: a run's live events and the run list's live rows (webapp/runs/consumers.py)."""

from typing import Any

from django.urls import re_path

from webapp.runs.consumers import RunConsumer, RunListConsumer

websocket_urlpatterns: list[Any] = [
    re_path(r"^ws/runs/$", RunListConsumer.as_asgi()),
    re_path(r"^ws/runs/(?P<run_id>\d+)/$", RunConsumer.as_asgi()),
]
