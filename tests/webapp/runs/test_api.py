"""The runs API: create from a preset, fix a field error with a PATCH, scoping, YAML export/import, schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings

from arpo_engine.config import RunConfig, load_config
from webapp.runs.models import Run
from webapp.runs.services import run_create

from .conftest import make_prompts


def _body(prompts: Any, tools: list[Any], **extra: Any) -> dict[str, Any]:
    return {"name": "api run", "preset": "arpo_paper", "base_model": "smollm2-135m", "dataset": prompts.pk,
            "tools": [t.pk for t in tools], **extra}  # fmt: skip


def test_create_with_the_arpo_preset_and_fix_a_field_error_with_a_patch(
    api_for: Any, alice: Any, small_model: Any, prompts: Any, demo_tools: list[Any]
) -> None:
    api = api_for(alice)
    created = api.post("/api/v1/runs/", _body(prompts, demo_tools, overrides={"rollout.initial_samples": 32}),
                       format="json")  # fmt: skip
    assert created.status_code == 201, created.json()
    assert created.json()["launchable"] is False
    assert "rollout.initial_samples" in created.json()["errors"]
    patched = api.patch(f"/api/v1/runs/{created.json()['id']}/", {"overrides": {"rollout": {"initial_samples": 8}}},
                        format="json")  # fmt: skip
    assert patched.status_code == 200
    assert patched.json()["launchable"] is True and patched.json()["errors"] == {}
    assert patched.json()["config"]["branching"]["enabled"] is True


def test_patch_with_null_drops_an_override(
    api_for: Any, alice: Any, small_model: Any, prompts: Any, demo_tools: list[Any]
) -> None:
    api = api_for(alice)
    run_id = api.post("/api/v1/runs/", _body(prompts, demo_tools, overrides={"optim.lr": 3e-5, "seed": 4}),
                      format="json").json()["id"]  # fmt: skip
    patched = api.patch(f"/api/v1/runs/{run_id}/", {"overrides": {"optim.lr": None}}, format="json").json()
    assert patched["overrides"] == {"seed": 4}
    assert patched["config"]["optim"]["lr"] == 1e-6


def test_unknown_key_answers_400_with_the_dotted_key(api_for: Any, alice: Any, small_model: Any, prompts: Any) -> None:
    response = api_for(alice).post(
        "/api/v1/runs/", _body(prompts, [], overrides={"rollout": {"groupsize": 8}}), format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_config"
    assert list(response.json()["fields"]) == ["rollout.groupsize"]


def test_outsider_gets_404_for_a_run(api_for: Any, alice: Any, charlie: Any, small_model: Any, prompts: Any) -> None:
    run = run_create(user=alice, name="mine", preset="arpo_paper", base_model=small_model, dataset=prompts)
    api = api_for(charlie)
    assert api.get(f"/api/v1/runs/{run.pk}/").status_code == 404
    assert api.get(f"/api/v1/runs/{run.pk}/config.yaml").status_code == 404
    assert api.patch(f"/api/v1/runs/{run.pk}/", {"name": "x"}, format="json").status_code == 404
    assert api.delete(f"/api/v1/runs/{run.pk}/").status_code == 404
    assert api.get("/api/v1/runs/").json()["count"] == 0


def test_outsider_cannot_use_someone_elses_dataset(api_for: Any, alice: Any, charlie: Any, prompts: Any) -> None:
    response = api_for(charlie).post("/api/v1/runs/", _body(prompts, []), format="json")
    assert response.status_code == 400
    assert "dataset" in response.json()["fields"]


def test_teammate_sees_team_runs_and_the_team_filter_selects_them(
    api_for: Any, alice: Any, bob: Any, lab: Any, small_model: Any
) -> None:
    team_data = make_prompts(alice, team=lab)
    run_create(user=alice, name="team run", preset="grpo_baseline", base_model=small_model, dataset=team_data,
               team="lab")  # fmt: skip
    run_create(user=alice, name="private", preset="arpo_paper", base_model=small_model, dataset=team_data)
    listed = api_for(bob).get("/api/v1/runs/").json()
    assert [r["name"] for r in listed["results"]] == ["team run"]
    assert listed["results"][0]["team"] == "lab"
    only_team = api_for(alice).get("/api/v1/runs/", {"team": "lab"}).json()
    assert [r["name"] for r in only_team["results"]] == ["team run"]


def test_team_run_refuses_a_personal_dataset(
    api_for: Any, alice: Any, lab: Any, small_model: Any, prompts: Any
) -> None:
    response = api_for(alice).post("/api/v1/runs/", _body(prompts, [], team="lab"), format="json")
    assert response.status_code == 400
    assert "team's datasets" in response.json()["fields"]["dataset"][0]


def test_exported_yaml_loads_in_the_engine_and_names_no_server_path(
    api_for: Any, alice: Any, small_model: Any, prompts: Any, demo_tools: list[Any], tmp_path: Path
) -> None:
    api = api_for(alice)
    run_id = api.post("/api/v1/runs/", _body(prompts, demo_tools, overrides={"rollout.initial_samples": 4,
                      "rollout.group_size": 8}), format="json").json()["id"]  # fmt: skip
    response = api.get(f"/api/v1/runs/{run_id}/config.yaml")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/yaml")
    media = str(Path(settings.MEDIA_ROOT)).rstrip("/")
    assert media not in response.content.decode()
    assert media not in json.dumps(api.get(f"/api/v1/runs/{run_id}/").json()["config"])
    path = tmp_path / "exported.yaml"
    path.write_bytes(response.content)
    exported = yaml.safe_load(response.content)
    run = Run.objects.get(pk=run_id)  # the engine itself still gets the real paths
    assert run.config["data"]["train_path"] == str(prompts.train_path())
    assert exported["data"]["train_path"] == f"media/datasets/{prompts.uid}/train.jsonl"
    assert exported["checkpoint"]["dir"] == f"media/runs/{run.uid}"
    loaded = load_config(path)  # relative paths resolve against the file's folder
    assert loaded.data.train_path == str(tmp_path / "media" / "datasets" / str(prompts.uid) / "train.jsonl")
    assert loaded.rollout == RunConfig.from_dict(run.config).rollout
    assert [t.name for t in loaded.tools] == ["search", "python"]


def test_import_of_an_exported_yaml_maps_paths_back_to_the_same_choices(
    api_for: Any, alice: Any, small_model: Any, prompts: Any, sft_demos: Any, demo_tools: list[Any]
) -> None:
    api = api_for(alice)
    original = api.post("/api/v1/runs/", _body(prompts, demo_tools, preset="aepo", sft_dataset=sft_demos.pk,
                        overrides={"optim.lr": 2e-5}), format="json").json()  # fmt: skip
    text = api.get(f"/api/v1/runs/{original['id']}/config.yaml").content.decode()
    imported = api.post("/api/v1/runs/import", {"yaml": text, "name": "again"}, format="json")
    assert imported.status_code == 201, imported.json()
    body = imported.json()
    assert (body["dataset"], body["sft_dataset"], body["tools"]) == (prompts.pk, sft_demos.pk, original["tools"])
    assert body["preset"] == "aepo"
    assert body["overrides"] == original["overrides"]
    without_paths = {k: v for k, v in body["config"].items() if k not in ("name", "checkpoint")}
    assert without_paths == {k: v for k, v in original["config"].items() if k not in ("name", "checkpoint")}


def test_import_rejects_an_unknown_key_by_its_dotted_key(api_for: Any, alice: Any, prompts: Any) -> None:
    text = yaml.safe_dump({"rollout": {"group_size": 8, "beam": 2}})
    response = api_for(alice).post("/api/v1/runs/import/", {"yaml": text}, format="json")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["rollout.beam"]


def test_import_names_a_data_path_that_is_not_a_dataset(api_for: Any, alice: Any, small_model: Any) -> None:
    text = yaml.safe_dump(
        {"data": {"train_path": "../var/demo/train.jsonl"}, "tools": [{"name": "nope", "kind": "python"}]}
    )
    response = api_for(alice).post("/api/v1/runs/import", {"yaml": text}, format="json")
    assert response.status_code == 400
    fields = response.json()["fields"]
    assert "upload it" in fields["data.train_path"][0]
    assert "No tool named 'nope'" in fields["tools[0]"][0]


def test_delete_a_draft(api_for: Any, alice: Any, small_model: Any, prompts: Any) -> None:
    run = run_create(user=alice, name="gone", preset="arpo_paper", base_model=small_model, dataset=prompts)
    assert api_for(alice).delete(f"/api/v1/runs/{run.pk}/").status_code == 204
    assert not Run.objects.exists()


def test_only_drafts_change(api_for: Any, alice: Any, small_model: Any, prompts: Any) -> None:
    run = run_create(user=alice, name="busy", preset="arpo_paper", base_model=small_model, dataset=prompts)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING)
    response = api_for(alice).patch(f"/api/v1/runs/{run.pk}/", {"name": "x"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "not_draft"


def test_clone_with_changes(api_for: Any, alice: Any, small_model: Any, prompts: Any) -> None:
    run = run_create(user=alice, name="a", preset="arpo_paper", base_model=small_model, dataset=prompts,
                     overrides={"seed": 3})  # fmt: skip
    clone = api_for(alice).post(f"/api/v1/runs/{run.pk}/clone/", {"name": "b", "preset": "grpo_baseline"},
                                format="json").json()  # fmt: skip
    assert (clone["name"], clone["preset"], clone["cloned_from"]) == ("b", "grpo_baseline", run.pk)
    assert clone["config"]["seed"] == 3 and clone["config"]["branching"]["enabled"] is False


def test_presets_base_models_and_config_schema(api_for: Any, alice: Any) -> None:
    api = api_for(alice)
    presets = api.get("/api/v1/presets/").json()
    assert [p["label"] for p in presets] == ["ARPO (paper)", "GRPO baseline", "AEPO"]
    assert presets[1]["values"]["branching"]["enabled"] is False
    assert "smollm2-135m" in [m["slug"] for m in api.get("/api/v1/base-models/").json()]
    schema = api.get("/api/v1/config-schema/").json()
    keys = [f["key"] for g in schema["groups"] for f in g["fields"]]
    assert "rollout.group_size" in keys and "branching.beta" in keys
    assert [g["label"] for g in schema["groups"]][:3] == ["Model", "Data", "Tools"]


def test_anonymous_gets_401(api_for: Any, db: None) -> None:
    assert api_for(None).get("/api/v1/runs/").status_code == 401
