"""Websocket routes. The live run page consumer arrives with the dashboard issue."""

from typing import Any

websocket_urlpatterns: list[Any] = []
