"""Runs need real datasets and tools: made here through their own services from the demo files in var/demo/."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase

from webapp.core.ownership import Owner
from webapp.datasets.models import Dataset
from webapp.datasets.services import dataset_create
from webapp.runs.models import BaseModel
from webapp.tools.models import Tool
from webapp.tools.services import tool_create

DEMO = Path(__file__).resolve().parents[3] / "var" / "demo"


def demo_upload(
    name: str, rows: int | None = None, *, edit: Callable[[dict[str, Any]], None] | None = None
) -> SimpleUploadedFile:
    lines = (DEMO / name).read_text().splitlines()
    if rows is not None:
        lines = lines[:rows]
    if edit is not None:
        parsed = [json.loads(line) for line in lines]
        for row in parsed:
            edit(row)
        lines = [json.dumps(row) for row in parsed]
    return SimpleUploadedFile(name, ("\n".join(lines) + "\n").encode(), content_type="application/jsonl")


def stored(kind: str, user: Any, upload: SimpleUploadedFile, *, team: Any = None, **more: Any) -> Dataset:
    """A dataset through the datasets service, its files moved into place (they move on commit)."""
    owner = Owner(team=team) if team is not None else Owner(user=user)
    with TestCase.captureOnCommitCallbacks(execute=True):
        return dataset_create(user=user, owner=owner, kind=kind, name=f"demo {kind}", file=upload, **more)


def make_prompts(user: Any, *, team: Any = None, rows: int = 40, edit: Any = None) -> Dataset:
    return stored(
        "prompts", user, demo_upload("train.jsonl", rows, edit=edit), team=team, eval_file=demo_upload("eval.jsonl", 20)
    )


@pytest.fixture
def small_model(db: None) -> BaseModel:
    """The bundled SmolLM2 (its tokenizer is prepared under var/models by the engine's set-up)."""
    model = BaseModel.objects.get(slug="smollm2-135m")
    assert model.local_folder() is not None, "run `make model` first: the bundled model is not prepared"
    return model


@pytest.fixture
def prompts(alice: Any) -> Dataset:
    return make_prompts(alice)


@pytest.fixture
def sft_demos(alice: Any) -> Dataset:
    return stored("sft", alice, demo_upload("sft_tags.jsonl", 20))


@pytest.fixture
def corpus(alice: Any) -> Dataset:
    return stored("corpus", alice, demo_upload("corpus.jsonl"))


@pytest.fixture
def python_tool(alice: Any) -> Tool:
    return tool_create(user=alice, name="python", kind="python")


@pytest.fixture
def search_tool(alice: Any, corpus: Dataset) -> Tool:
    return tool_create(user=alice, name="search", kind="search", corpus=corpus.pk)


@pytest.fixture
def demo_tools(python_tool: Tool, search_tool: Tool) -> list[Tool]:
    return [search_tool, python_tool]
