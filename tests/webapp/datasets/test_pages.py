"""The browser upload: the form stores a dataset, or shows the problems by line and stores nothing."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from webapp.datasets.models import Dataset

from .conftest import DEMO, jsonl, nothing_stored

pytestmark = pytest.mark.django_db


def _file(name: str, content: bytes) -> io.BytesIO:
    fh = io.BytesIO(content)
    fh.name = name
    return fh


def test_the_upload_form_stores_the_demo_dataset_and_opens_its_page(client: Any, alice: Any, committed: Any) -> None:
    client.force_login(alice)
    assert client.get("/datasets/new/").status_code == 200
    with committed():
        response = client.post(
            "/datasets/new/",
            {"kind": "prompts", "file": _file("train.jsonl", (DEMO / "train.jsonl").read_bytes()), "eval_percent": 10},
        )
    dataset = Dataset.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/datasets/{dataset.pk}/"
    assert dataset.eval_rows > 0 and dataset.train_path() is not None and dataset.eval_path() is not None
    listing = client.get("/datasets/").content.decode()
    assert "train.jsonl" in listing and str(dataset.rows) in listing


def test_the_upload_form_lists_bad_lines_and_stores_nothing(client: Any, alice: Any, media_root: Path) -> None:
    client.force_login(alice)
    content = jsonl([{"prompt": "fine", "answer": "1"}] + [{"prompt": f"q{i}"} for i in range(60)])
    response = client.post("/datasets/new/", {"kind": "prompts", "file": _file("bad.jsonl", content)})
    page = response.content.decode()
    assert response.status_code == 400
    assert "60 problems" in page and "line 2: missing answer" in page and "… and 10 more." in page
    assert "Nothing was stored." in page and nothing_stored(media_root)


def test_the_upload_form_refuses_an_oversized_file(client: Any, alice: Any, media_root: Path, settings: Any) -> None:
    settings.ARPO_UPLOAD_MAX_BYTES = 100
    client.force_login(alice)
    response = client.post("/datasets/new/", {"kind": "prompts", "file": _file("big.jsonl", b"x" * 1000)})
    assert response.status_code == 400 and "over the 100 bytes upload limit" in response.content.decode()
    assert nothing_stored(media_root)


def test_the_upload_form_still_checks_csrf(alice: Any, media_root: Path) -> None:
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(
        "/datasets/new/", {"kind": "prompts", "file": _file("t.jsonl", jsonl([{"prompt": "q", "answer": "1"}]))}
    )
    assert response.status_code == 403 and nothing_stored(media_root)


def test_rename_and_delete_pages_work_for_the_owner(client: Any, alice: Any, committed: Any) -> None:
    client.force_login(alice)
    with committed():
        client.post(
            "/datasets/new/", {"kind": "prompts", "file": _file("t.jsonl", jsonl([{"prompt": "q", "answer": "1"}]))}
        )
    dataset = Dataset.objects.get()
    assert client.post(f"/datasets/{dataset.pk}/edit/", {"name": "Better"}).status_code == 302
    assert Dataset.objects.get().name == "Better"
    assert client.get(f"/datasets/{dataset.pk}/delete/").status_code == 200
    with committed():
        assert client.post(f"/datasets/{dataset.pk}/delete/").status_code == 302
    assert not Dataset.objects.exists() and not dataset.storage_dir().exists()


def test_page_uploads_share_the_upload_throttle(client: Any, alice: Any, settings: Any, committed: Any) -> None:
    from django.core.cache import cache

    cache.clear()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"upload": "1/min"}}
    client.force_login(alice)
    statuses = []
    for _ in range(2):
        with committed():
            rows = _file("t.jsonl", jsonl([{"prompt": "q", "answer": "1"}]))
            statuses.append(client.post("/datasets/new/", {"kind": "prompts", "file": rows}).status_code)
    cache.clear()
    assert statuses == [302, 429] and Dataset.objects.count() == 1
