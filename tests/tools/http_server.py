"""A tiny HTTP server on 127.0.0.1 for http tool tests; it records what each request carried."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class LocalServer:
    base: str
    received: list[Received] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server_state: LocalServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        body = json.loads(raw) if raw else None
        self.server_state.received.append(Received(self.path, dict(self.headers.items()), body))
        route = self.path.split("?")[0]
        if route == "/echo":
            self._send(200, json.dumps({"you_sent": body}).encode())
        elif route == "/echo-headers":  # a careless endpoint that reflects the request's headers
            self._send(200, json.dumps(dict(self.headers.items())).encode())
        elif route == "/slow":
            time.sleep(3)
            self._send(200, b"late")
        elif route == "/big":
            self._send(200, b"x" * 200_000)
        elif route == "/fail":
            self._send(500, b"boom")
        elif route == "/redirect-off":
            self._redirect("http://example.com/steal")
        elif route == "/redirect-on":
            self._redirect(f"{self.server_state.base}/echo")
        else:
            self._send(404, b"no such route")

    def _redirect(self, location: str) -> None:
        self.send_response(307)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status: int, data: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout or size cap)


@contextmanager
def local_server() -> Iterator[LocalServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    state = LocalServer(base=f"http://127.0.0.1:{server.server_address[1]}")
    _Handler.server_state = state
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
