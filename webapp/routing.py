"""Websocket routes: a run's live events and the run list's live rows (webapp/runs/consumers.py), and a
playground session's answers (webapp/playground/consumers.py)."""

from typing import Any

from django.urls import re_path

from webapp.playground.consumers import PlaygroundConsumer
from webapp.runs.consumers import RunConsumer, RunListConsumer

websocket_urlpatterns: list[Any] = [
    re_path(r"^ws/runs/$", RunListConsumer.as_asgi()),
    re_path(r"^ws/runs/(?P<run_id>\d+)/$", RunConsumer.as_asgi()),
    re_path(r"^ws/playground/(?P<session_id>\d+)/$", PlaygroundConsumer.as_asgi()),
]
