"""Run pages: scoped like the API (outsiders get 404), the list filters by team, import and clone work."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from tests.webapp.conftest import PASSWORD
from webapp.runs.models import Run
from webapp.runs.services import export_yaml, run_create

from .conftest import make_prompts


def _client(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


@pytest.fixture
def run(alice: Any, small_model: Any, prompts: Any) -> Run:
    return run_create(user=alice, name="alice run", preset="arpo_paper", base_model=small_model, dataset=prompts)


@pytest.mark.parametrize("name", ["runs:detail", "runs:edit", "runs:export"])
def test_outsider_gets_404_on_run_pages(charlie: Any, run: Run, name: str) -> None:
    assert _client("charlie").get(reverse(name, args=[run.pk])).status_code == 404


def test_outsider_cannot_clone_or_delete(charlie: Any, run: Run) -> None:
    client = _client("charlie")
    assert client.post(reverse("runs:clone", args=[run.pk])).status_code == 404
    assert client.post(reverse("runs:delete", args=[run.pk])).status_code == 404
    assert Run.objects.count() == 1


def test_teammate_sees_team_runs_in_the_list_and_the_filter(alice: Any, bob: Any, lab: Any, small_model: Any) -> None:
    data = make_prompts(alice, team=lab)
    run_create(user=alice, name="team run", preset="aepo", base_model=small_model, dataset=data, team=lab)
    run_create(user=alice, name="alice only", preset="aepo", base_model=small_model, dataset=data)
    page = _client("bob").get(reverse("runs:list")).content.decode()
    assert "team run" in page and "alice only" not in page
    filtered = _client("alice").get(reverse("runs:list"), {"team": "personal"}).content.decode()
    assert "alice only" in filtered and "team run" not in filtered


def test_list_shows_status_preset_model_and_dataset(alice: Any, run: Run) -> None:
    page = _client("alice").get(reverse("runs:list")).content.decode()
    for text in ("alice run", "Draft", "ARPO (paper)", "SmolLM2-135M-Instruct", "demo prompts"):
        assert text in page


def test_import_page_creates_a_run_from_an_exported_file(alice: Any, run: Run) -> None:
    upload = SimpleUploadedFile("run.yaml", export_yaml(run).encode())
    response = _client("alice").post(reverse("runs:import"), {"file": upload, "name": "imported"})
    assert response.status_code == 302
    imported = Run.objects.get(name="imported")
    assert imported.dataset_id == run.dataset_id and imported.preset == "arpo_paper"


def test_import_page_shows_an_unknown_key(alice: Any, db: None) -> None:
    upload = SimpleUploadedFile("run.yaml", b"optim:\n  learning_rate: 1\n")
    response = _client("alice").post(reverse("runs:import"), {"file": upload})
    assert response.status_code == 400
    assert "optim.learning_rate" in response.content.decode()


def test_clone_page_makes_a_draft_copy(alice: Any, run: Run) -> None:
    response = _client("alice").post(reverse("runs:clone", args=[run.pk]))
    clone = Run.objects.exclude(pk=run.pk).get()
    assert response["Location"] == reverse("runs:edit", args=[clone.pk])
    assert clone.cloned_from_id == run.pk and clone.config["data"] == run.config["data"]
