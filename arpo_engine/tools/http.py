"""The `http` tool: POST the call's arguments as JSON to the owner's endpoint (PRODUCT.md Tools).

What keeps it safe to run on a shared worker:
- a host allowlist, checked on every request including each redirect (at most 3 are followed);
- no private, loopback or link-local addresses unless `allow_private_networks` (the service decides);
  the name is resolved just before the request, so DNS rebinding in between is not covered;
- a timeout per network step and a wall-clock deadline over the whole body; a response size cap;
- secret headers come from the caller at build time, never from the config, and never appear in an
  observation, an error or `details`: any secret value the endpoint echoes back is masked.
Every failure is an observation with `error` set; `run` never raises.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from arpo_engine.tools.base import ToolResult, function_schema

DEFAULT_DESCRIPTION = "Send the input to a web service and return its answer."
DEFAULT_ARGUMENT = "input"
MAX_REDIRECTS = 3
MASK = "[secret]"
_MIN_MASKED_CHARS = 4  # shorter values would mask ordinary words


class BlockedRequest(Exception):
    """A request (or redirect) to a host the tool may not reach; the message names the host only."""


class HttpTool:
    """`kind: http`. Thread-safe: each call opens its own client."""

    def __init__(
        self,
        name: str = "http",
        *,
        url: str,
        allowed_hosts: Sequence[str] = (),
        timeout_s: float = 10.0,
        max_response_bytes: int = 65_536,
        allow_private_networks: bool = False,
        secret_headers: Mapping[str, str] | None = None,
        description: str | None = None,
        schema: Mapping[str, Any] | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"http tool url must be an http:// or https:// URL, got {url!r}")
        if parts.username or parts.password:
            raise ValueError("http tool url must not carry a user name or password; use secret headers")
        if timeout_s <= 0 or max_response_bytes <= 0:
            raise ValueError("http tool options timeout_s and max_response_bytes must be positive")
        self.name = name
        self.url = url
        self.allowed_hosts = frozenset(h.lower().strip() for h in allowed_hosts) or frozenset({parts.hostname})
        if parts.hostname.lower() not in self.allowed_hosts:
            raise ValueError(f"http tool url host {parts.hostname!r} is not in allowed_hosts")
        self.timeout_s = float(timeout_s)
        self.max_response_bytes = max_response_bytes
        self.allow_private_networks = allow_private_networks
        self._secret_headers = dict(secret_headers or {})
        self._description = description or DEFAULT_DESCRIPTION
        self._schema = schema
        self.primary_argument = _primary_argument(schema)

    def __repr__(self) -> str:  # never the headers
        return f"HttpTool(name={self.name!r}, url={self.url!r}, secret_headers={sorted(self._secret_headers)})"

    def schema(self) -> dict[str, Any]:
        if self._schema is not None:
            return copy.deepcopy(dict(self._schema))
        text = {"type": "string", "description": "The input for the service."}
        return function_schema(self.name, self._description, {DEFAULT_ARGUMENT: text}, [DEFAULT_ARGUMENT])

    def run(self, arguments: Mapping[str, Any]) -> ToolResult:
        started = time.perf_counter()
        try:
            body = json.dumps(dict(arguments))
        except (TypeError, ValueError) as exc:
            return ToolResult(output=f"The arguments are not JSON: {exc}", error="bad_arguments")
        try:
            output, error, details = self._post(body, deadline=started + self.timeout_s)
        except BlockedRequest as exc:
            output, error, details = str(exc), "blocked_host", {}
        except httpx.TooManyRedirects:
            output, error, details = f"More than {MAX_REDIRECTS} redirects.", "redirect", {}
        except httpx.TimeoutException:
            output, error, details = f"The service did not answer within {self.timeout_s:g} s.", "timeout", {}
        except httpx.HTTPError as exc:
            output, error, details = f"The request failed: {type(exc).__name__}.", "connection", {}
        latency_ms = (time.perf_counter() - started) * 1000
        truncated = bool(details.pop("truncated", False))
        return ToolResult(
            output=self._mask(output), error=error, latency_ms=latency_ms, truncated=truncated, details=details
        )

    def _post(self, body: str, *, deadline: float) -> tuple[str, str | None, dict[str, Any]]:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/*", **self._secret_headers}
        with httpx.Client(
            timeout=self.timeout_s,
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            trust_env=False,  # no proxies or .netrc credentials from the worker's environment
            event_hooks={"request": [self._check_request]},
        ) as client, client.stream("POST", self.url, content=body, headers=headers) as response:
            data, truncated = _read_capped(response, self.max_response_bytes, deadline)
        text = data.decode(response.encoding or "utf-8", errors="replace")
        details: dict[str, Any] = {"status": response.status_code, "bytes": len(data), "truncated": truncated}
        if truncated:
            text += f"\n[response cut at {self.max_response_bytes} bytes]"
        if response.status_code >= 400:
            return f"HTTP {response.status_code}: {text}", "http_status", details
        return text, None, details

    def _check_request(self, request: httpx.Request) -> None:
        host = (request.url.host or "").lower()
        if host not in self.allowed_hosts:
            raise BlockedRequest(f"The host {host!r} is not in this tool's allowed hosts.")
        if not self.allow_private_networks and _is_private(host, request.url.port):
            raise BlockedRequest(f"The host {host!r} is on a private network, which this service does not allow.")

    def _mask(self, text: str) -> str:
        for value in self._secret_headers.values():
            if len(value) >= _MIN_MASKED_CHARS:
                text = text.replace(value, MASK)
        return text


def _read_capped(response: httpx.Response, cap: int, deadline: float) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            return b"".join(chunks)[:cap], True
        if time.perf_counter() > deadline:  # a slow drip would otherwise reset the per-read timeout forever
            raise httpx.ReadTimeout("deadline")
    return b"".join(chunks), False


def _is_private(host: str, port: int | None) -> bool:
    try:
        infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except OSError:
        return False  # unresolvable: the request itself will fail with a connection error
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global:
            return True
    return False


def _primary_argument(schema: Mapping[str, Any] | None) -> str:
    """The string argument a `<name>…</name>` tag body fills: the first required string, else the first string."""
    if schema is None:
        return DEFAULT_ARGUMENT
    try:
        parameters = schema["function"]["parameters"]
        properties = parameters.get("properties", {})
        required = [r for r in parameters.get("required", []) if r in properties]
    except (KeyError, TypeError, AttributeError):
        return DEFAULT_ARGUMENT
    strings = [key for key, spec in properties.items() if isinstance(spec, Mapping) and spec.get("type") == "string"]
    for key in [*required, *strings]:
        if key in strings:
            return str(key)
    return DEFAULT_ARGUMENT
