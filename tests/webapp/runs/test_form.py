"""The run form is generated from the engine config: every knob, presets fill it, errors show at the field."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from arpo_engine import config_meta
from arpo_engine.config import load_preset
from tests.webapp.conftest import PASSWORD
from webapp.runs.forms import RunForm
from webapp.runs.models import Run
from webapp.runs.services import run_create


def _leaf_keys() -> list[str]:
    import dataclasses
    import typing

    from arpo_engine.config import RunConfig

    def walk(cls: Any, prefix: str) -> list[str]:
        hints = typing.get_type_hints(cls)
        out: list[str] = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            inner: Any = hints[f.name]
            out += walk(inner, f"{prefix}{f.name}.") if dataclasses.is_dataclass(inner) else [f"{prefix}{f.name}"]
        return out

    return walk(RunConfig, "")


def test_form_has_a_field_or_a_chooser_for_every_engine_knob(alice: Any) -> None:
    form = RunForm(user=alice)
    choosers = {"name": "name", "model.path": "base_model", "data.train_path": "dataset",
                "data.eval_path": "eval_dataset", "sft.data_path": "sft_dataset", "tools": "tools"}  # fmt: skip
    for key in _leaf_keys():
        if key == "checkpoint.dir":
            continue  # the service alone picks the run's folder
        assert choosers.get(key, key) in form.fields, key


def test_knob_help_text_is_the_engine_docstring(alice: Any) -> None:
    form = RunForm(user=alice)
    assert form.fields["rollout.group_size"].help_text == config_meta.field_map()["rollout.group_size"].help


@pytest.mark.parametrize("preset", ["arpo_paper", "grpo_baseline", "aepo"])
def test_presets_fill_the_form(alice: Any, preset: str) -> None:
    initial = RunForm.initial_for(preset)
    for key, value in config_meta.flatten(load_preset(preset)).items():
        assert initial[key] == value, key


def test_rarely_changed_knobs_are_folded(alice: Any) -> None:
    groups = {g.key: g for g in RunForm(user=alice, initial=RunForm.initial_for("arpo_paper")).knob_groups()}
    assert "rollout.tool_concurrency" in [r.meta.key for r in groups["rollout"].folded]
    assert "rollout.group_size" in [r.meta.key for r in groups["rollout"].rows]


def _post_data(run_choices: dict[str, Any], **knobs: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in RunForm.initial_for("arpo_paper").items():
        if isinstance(value, bool):
            if value:
                data[key] = "on"
        elif isinstance(value, list):
            data[key] = ", ".join(value)
        else:
            data[key] = value
    data.update(run_choices)
    data.update(knobs)
    return data


@pytest.fixture
def alice_client(alice: Any) -> Client:
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    return client


def test_create_page_saves_a_launchable_run_from_the_arpo_preset(
    alice_client: Client, small_model: Any, prompts: Any, demo_tools: list[Any]
) -> None:
    choices = {"name": "first", "preset": "arpo_paper", "base_model": small_model.pk, "dataset": prompts.pk,
               "tools": [t.pk for t in demo_tools]}  # fmt: skip
    response = alice_client.post(
        reverse("runs:create"), _post_data(choices, **{"rollout.group_size": 8, "rollout.initial_samples": 4})
    )
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("runs:detail", args=[run.pk])
    assert run.launchable
    assert run.overrides == {"rollout": {"group_size": 8, "initial_samples": 4}}


def test_cross_check_error_is_shown_at_its_field_and_fixing_it_makes_the_run_launchable(
    alice_client: Client, small_model: Any, prompts: Any, demo_tools: list[Any]
) -> None:
    choices = {"name": "first", "preset": "arpo_paper", "base_model": small_model.pk, "dataset": prompts.pk,
               "tools": [t.pk for t in demo_tools]}  # fmt: skip
    response = alice_client.post(reverse("runs:create"), _post_data(choices, **{"rollout.group_size": 4}))
    run = Run.objects.get()
    assert response["Location"] == reverse("runs:edit", args=[run.pk])
    page = alice_client.get(response["Location"]).content.decode()
    field_html = page[page.index('id="id_rollout.initial_samples"') :]
    assert "must be between 1 and rollout.group_size" in field_html[: field_html.index("</div>")]
    fixed = alice_client.post(reverse("runs:edit", args=[run.pk]), _post_data(choices, **{"rollout.group_size": 8}))
    run.refresh_from_db()
    assert fixed["Location"] == reverse("runs:detail", args=[run.pk])
    assert run.launchable and run.errors == {}


def test_a_wrong_type_is_an_error_at_the_field_and_nothing_is_saved(
    alice_client: Client, small_model: Any, prompts: Any
) -> None:
    choices = {"name": "x", "preset": "arpo_paper", "base_model": small_model.pk, "dataset": prompts.pk}
    response = alice_client.post(reverse("runs:create"), _post_data(choices, **{"optim.lr": "fast"}))
    assert response.status_code == 400
    assert response.context["form"].errors["optim.lr"]
    assert not Run.objects.exists()


def test_preset_chooser_lists_the_three_presets(alice_client: Client) -> None:
    page = alice_client.get(reverse("runs:create")).content.decode()
    for label in ("ARPO (paper)", "GRPO baseline", "AEPO"):
        assert label in page


def test_detail_page_shows_the_diff_against_the_preset(
    alice: Any, alice_client: Client, small_model: Any, prompts: Any
) -> None:
    run = run_create(user=alice, name="r", preset="arpo_paper", base_model=small_model, dataset=prompts,
                     overrides={"optim.lr": 2e-5})  # fmt: skip
    response = alice_client.get(reverse("runs:detail", args=[run.pk]))
    assert {"key": "optim.lr", "preset": 1e-6, "value": 2e-5} in response.context["diff"]
