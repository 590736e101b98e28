"""Helpers for dataset tests: uploading through the real API and checking that nothing was left behind.

Uploads move their files into place when the transaction commits; each test runs inside one
rolled-back transaction, so the helpers run the on-commit callbacks as a real commit would.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from webapp.datasets.models import Dataset

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "var" / "demo"


def jsonl(rows: list[Any]) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def upload_file(name: str, content: bytes, content_type: str = "application/octet-stream") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)


Upload = Callable[..., Any]


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Any) -> Callable[[], Any]:
    """A context manager: on-commit callbacks registered inside it run at its end, as after a commit."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def upload(api_for: Callable[[Any], APIClient], alice: Any, committed: Callable[[], Any]) -> Upload:
    """POST a file to /api/v1/datasets/ as alice (or `user=`); returns the response."""

    def post(filename: str, content: bytes, /, *, user: Any = None, **fields: Any) -> Any:
        client = api_for(user or alice)
        files = {"file": io.BytesIO(content)}
        files["file"].name = filename  # type: ignore[attr-defined]
        for key, value in list(fields.items()):
            if isinstance(value, tuple):  # (name, bytes): another file
                fh = io.BytesIO(value[1])
                fh.name = value[0]  # type: ignore[attr-defined]
                fields[key] = fh
        with committed():
            return client.post("/api/v1/datasets/", {**files, **fields}, format="multipart")

    return post


def nothing_stored(media_root: Path) -> bool:
    """No dataset row and not a single file under MEDIA_ROOT (empty folders are allowed)."""
    files = [p for p in media_root.rglob("*") if p.is_file()]
    return Dataset.objects.count() == 0 and files == []
