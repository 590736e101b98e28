"""Who sees which dataset: owner, teammate, outsider, anonymous; and the list filters, rename, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache

from webapp.datasets.models import Dataset

from .conftest import Upload, jsonl

pytestmark = pytest.mark.django_db

ROWS = jsonl([{"prompt": "q", "answer": "1"}, {"prompt": "r", "answer": "2"}])


@pytest.fixture
def team_dataset(upload: Upload, lab: Any) -> int:
    response = upload("team.jsonl", ROWS, team="lab")
    assert response.status_code == 201, response.json()
    return int(response.json()["id"])


@pytest.fixture
def own_dataset(upload: Upload) -> int:
    return int(upload("mine.jsonl", ROWS).json()["id"])


@pytest.mark.parametrize("suffix", ["", "preview/"])
def test_outsider_gets_404_for_a_dataset(api_for: Any, charlie: Any, team_dataset: int, suffix: str) -> None:
    response = api_for(charlie).get(f"/api/v1/datasets/{team_dataset}/{suffix}")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_outsider_cannot_rename_or_delete_a_dataset(api_for: Any, charlie: Any, team_dataset: int) -> None:
    client = api_for(charlie)
    assert client.patch(f"/api/v1/datasets/{team_dataset}/", {"name": "x"}, format="json").status_code == 404
    assert client.delete(f"/api/v1/datasets/{team_dataset}/").status_code == 404
    assert Dataset.objects.get(pk=team_dataset).name == "team"


def test_outsider_lists_nothing_and_gets_404_pages(api_for: Any, client: Any, charlie: Any, team_dataset: int) -> None:
    assert api_for(charlie).get("/api/v1/datasets/").json()["results"] == []
    client.force_login(charlie)
    for url in (f"/datasets/{team_dataset}/", f"/datasets/{team_dataset}/edit/", f"/datasets/{team_dataset}/delete/"):
        assert client.get(url).status_code == 404


def test_teammate_sees_team_datasets_but_not_personal_ones(
    api_for: Any, bob: Any, team_dataset: int, own_dataset: int
) -> None:
    client = api_for(bob)
    listed = [d["id"] for d in client.get("/api/v1/datasets/").json()["results"]]
    assert listed == [team_dataset]
    body = client.get(f"/api/v1/datasets/{team_dataset}/").json()
    assert body["team"] == "lab" and body["owner"] == "Lab" and body["created_by"] == "alice"
    assert client.get(f"/api/v1/datasets/{own_dataset}/").status_code == 404


def test_uploading_for_a_team_you_are_not_in_is_404(upload: Upload, charlie: Any, lab: Any, media_root: Path) -> None:
    response = upload("x.jsonl", ROWS, user=charlie, team="lab")
    assert response.status_code == 404 and Dataset.objects.count() == 0


def test_anonymous_gets_401_from_the_api_and_a_login_redirect_from_pages(api_for: Any, client: Any) -> None:
    assert api_for(None).get("/api/v1/datasets/").status_code == 401
    response = client.get("/datasets/")
    assert response.status_code == 302 and "/login" in response["Location"]


def test_the_list_filters_by_kind_and_team(upload: Upload, api_for: Any, alice: Any, team_dataset: int) -> None:
    upload("sft.jsonl", jsonl([{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}]),
           kind="sft")  # fmt: skip
    client = api_for(alice)
    kinds = [d["kind"] for d in client.get("/api/v1/datasets/", {"kind": "sft"}).json()["results"]]
    assert kinds == ["sft"]
    assert [d["id"] for d in client.get("/api/v1/datasets/", {"team": "lab"}).json()["results"]] == [team_dataset]
    assert team_dataset not in [d["id"] for d in client.get("/api/v1/datasets/", {"team": "me"}).json()["results"]]


def test_owner_renames_a_dataset(api_for: Any, alice: Any, own_dataset: int) -> None:
    response = api_for(alice).patch(f"/api/v1/datasets/{own_dataset}/", {"name": "Renamed"}, format="json")
    assert response.status_code == 200 and response.json()["name"] == "Renamed"
    response = api_for(alice).patch(f"/api/v1/datasets/{own_dataset}/", {"rows": 5, "name": " "}, format="json")
    assert response.status_code == 400 and Dataset.objects.get(pk=own_dataset).rows == 2


def test_deleting_a_dataset_removes_its_row_and_files(
    api_for: Any, alice: Any, own_dataset: int, media_root: Path, committed: Any
) -> None:
    folder = Dataset.objects.get(pk=own_dataset).storage_dir()
    assert folder.is_dir()
    with committed():
        assert api_for(alice).delete(f"/api/v1/datasets/{own_dataset}/").status_code == 204
    assert not folder.exists() and not Dataset.objects.exists()


def test_a_corpus_used_by_a_search_tool_cannot_be_deleted(upload: Upload, api_for: Any, alice: Any) -> None:
    from webapp.tools.services import tool_create

    corpus_id = upload("c.jsonl", jsonl([{"title": "A", "text": "alpha beta"}]), kind="corpus").json()["id"]
    tool_create(user=alice, name="search", kind="search", corpus=corpus_id)
    response = api_for(alice).delete(f"/api/v1/datasets/{corpus_id}/")
    assert response.status_code == 409 and "in use" in response.json()["message"]
    assert Dataset.objects.get(pk=corpus_id).corpus_path() is not None


def test_uploads_are_throttled(upload: Upload, settings: Any) -> None:
    cache.clear()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"upload": "2/min"}}
    statuses = [upload("t.jsonl", ROWS).status_code for _ in range(3)]
    assert statuses == [201, 201, 429]
    cache.clear()


def test_the_openapi_schema_describes_the_multipart_upload(api_for: Any, alice: Any) -> None:
    schema = api_for(alice).get("/api/schema/", {"format": "json"}).json()
    post = schema["paths"]["/api/v1/datasets/"]["post"]
    body = post["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    props = schema["components"]["schemas"][body]["properties"]
    assert props["file"]["format"] == "binary" and props["eval_file"]["format"] == "binary"
    assert set(post["responses"]) >= {"201", "400", "413", "429"}
    preview = schema["paths"]["/api/v1/datasets/{id}/preview/"]["get"]
    assert {p["name"] for p in preview["parameters"]} >= {"base_model", "tools", "call_format", "rows"}
