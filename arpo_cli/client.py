"""A small client for the ARPO Studio REST API: base URL and token from the environment or `arpo login`.

Credentials live in `$ARPO_CONFIG_DIR/credentials.json` (default `~/.config/arpo/`), readable only by
the user. `ARPO_URL` and `ARPO_TOKEN` override the file, for CI and scripts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"


class ApiError(Exception):
    """An error answer of the API, or no answer at all; the message is what a person should read."""

    def __init__(self, message: str, *, status: int | None = None, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.fields = fields or {}


def config_dir() -> Path:
    return Path(os.environ.get("ARPO_CONFIG_DIR") or Path.home() / ".config" / "arpo")


def _credentials_path() -> Path:
    return config_dir() / "credentials.json"


def load_credentials() -> dict[str, str]:
    path = _credentials_path()
    stored: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}
    if os.environ.get("ARPO_URL"):
        stored["url"] = os.environ["ARPO_URL"]
    if os.environ.get("ARPO_TOKEN"):
        stored["token"] = os.environ["ARPO_TOKEN"]
    stored.setdefault("url", DEFAULT_URL)
    return stored


def save_credentials(url: str, token: str) -> Path:
    path = _credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created private before the token is written, so it is never readable by others, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "token": token}, f)
    path.chmod(0o600)
    return path


def forget_credentials() -> None:
    _credentials_path().unlink(missing_ok=True)


@dataclass
class Client:
    url: str
    token: str | None = None
    timeout: float = 120.0

    @classmethod
    def from_config(cls, *, need_token: bool = True) -> Client:
        creds = load_credentials()
        if need_token and not creds.get("token"):
            raise ApiError("Not signed in: run `arpo login` (or set ARPO_TOKEN).")
        return cls(url=creds["url"].rstrip("/"), token=creds.get("token"))

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        try:
            response = httpx.request(
                method, f"{self.url}/api/v1/{path.lstrip('/')}", headers=headers, timeout=self.timeout, **kwargs
            )
        except httpx.HTTPError as exc:
            raise ApiError(f"Cannot reach ARPO Studio at {self.url}: {exc}") from None
        if response.status_code >= 400:
            raise _error(response)
        if response.status_code == 204 or not response.content:
            return None
        if "json" in response.headers.get("content-type", ""):
            return response.json()
        return response.text

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def download(self, path: str, dest: Path, progress: Callable[[int, int | None], None] | None = None) -> int:
        """Stream a file answer to `dest` in chunks (never whole in memory); returns the bytes written.
        `progress(done, total)` is called per chunk; total is the Content-Length, or None."""
        headers = {"Authorization": f"Token {self.token}"} if self.token else {}
        url = f"{self.url}/api/v1/{path.lstrip('/')}"
        try:
            with httpx.stream("GET", url, headers=headers, timeout=self.timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error(response)
                length = response.headers.get("content-length")
                total = int(length) if length and length.isdigit() else None
                done = 0
                with dest.open("wb") as f:
                    for chunk in response.iter_bytes(1 << 20):
                        f.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
        except httpx.HTTPError as exc:
            raise ApiError(f"Download from {self.url} failed: {exc}") from None
        if total is not None and done != total:
            raise ApiError(f"The download stopped after {done} of {total} bytes; try again.")
        return done

    def all_pages(self, path: str, **params: Any) -> list[Any]:
        """Every item of a paginated list."""
        items: list[Any] = []
        page = 1
        while True:
            body = self.get(path, page=page, page_size=200, **params)
            if isinstance(body, list):
                return body
            items.extend(body["results"])
            if not body.get("next"):
                return items
            page += 1


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if isinstance(body, dict) and "message" in body:
        return ApiError(str(body["message"]), status=response.status_code, fields=body.get("fields") or {})
    return ApiError(f"HTTP {response.status_code} from the server", status=response.status_code)
