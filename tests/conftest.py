"""Shared fixtures: the tiny random model and the prepared SmolLM2 folder, built once per session."""

import os
from pathlib import Path

import pytest

# Everything runs offline; the tokenizer's thread pool would only fight pytest for the two cores.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama with the SmolLM2 tokenizer (vocabulary 49152, chat template)."""
    from arpo_engine.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The real SmolLM2-135M-Instruct as a safetensors folder (converted from the GGUF on first use)."""
    from arpo_engine.models import prepare

    return prepare("smollm2-135m")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect `gpu` tests where CUDA is absent, as the marker promises (pyproject.toml)."""
    gpu = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu or _cuda_available():
        return
    config.hook.pytest_deselected(items=gpu)
    items[:] = [item for item in items if item.get_closest_marker("gpu") is None]


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.fixture(autouse=True)
def _base_model_catalogue(request: pytest.FixtureRequest) -> None:
    """Transactional tests flush the database, and with it the base models a data migration seeded:
    put them back for every test that uses the database, so test order never matters."""
    marker = request.node.get_closest_marker("django_db")
    transactional = marker is not None and (marker.kwargs.get("transaction") or marker.kwargs.get("serialized_rollback"))
    if not transactional and not {"transactional_db", "live_server"} & set(request.fixturenames):
        return
    request.getfixturevalue("transactional_db")
    import importlib

    from webapp.runs.models import BaseModel

    seed = importlib.import_module("webapp.runs.migrations.0002_seed_base_models").SEED
    for row in seed:
        BaseModel.objects.update_or_create(slug=row["slug"], defaults=row)
