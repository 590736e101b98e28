"""Uploading datasets over the API: accepted shapes, the split, SFT and corpus, and the stored files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from arpo_engine.data import load_samples, load_sft_demos
from webapp.datasets.models import Dataset

from .conftest import DEMO, Upload, jsonl

pytestmark = pytest.mark.django_db


def test_the_demo_dataset_uploads_with_every_row_stored_normalized(upload: Upload) -> None:
    response = upload("train.jsonl", (DEMO / "train.jsonl").read_bytes(), name="Demo")
    assert response.status_code == 201, response.json()
    body = response.json()
    dataset = Dataset.objects.get(pk=body["id"])
    demo = load_samples(DEMO / "train.jsonl")
    assert body["rows"] == len(demo) and body["train_rows"] == len(demo) and body["eval_rows"] == 0
    assert body["format"] == "jsonl" and body["kind"] == "prompts" and body["name"] == "Demo"
    stored = load_samples(dataset.train_path())  # type: ignore[arg-type]
    assert [s.messages for s in stored] == [s.messages for s in demo]
    assert [s.answers for s in stored] == [s.answers for s in demo]
    assert [s.data_source for s in stored] == [s.data_source for s in demo]
    assert dataset.eval_path() is None
