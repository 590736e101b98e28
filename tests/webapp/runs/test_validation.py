"""A run's config is checked by the engine and against its dataset and tools; each problem lands at its key."""

from __future__ import annotations

import time
from typing import Any

import pytest

from webapp.runs.models import Run
from webapp.runs.services import run_create

from .conftest import make_prompts


def _create(alice: Any, model: Any, dataset: Any, tools: list[Any], **overrides: Any) -> Run:
    return run_create(
        user=alice, name="r", preset="arpo_paper", base_model=model, dataset=dataset,
        tools=[t.pk for t in tools], overrides=overrides,
    )  # fmt: skip


def test_valid_config_is_launchable(alice: Any, small_model: Any, prompts: Any, demo_tools: list[Any]) -> None:
    run = _create(alice, small_model, prompts, demo_tools, **{"rollout.group_size": 8, "rollout.initial_samples": 4})
    assert run.errors == {}
    assert run.launchable is True
    assert run.config["rollout"]["group_size"] == 8
    assert run.config["data"]["train_path"] == str(prompts.train_path())


def test_m_smaller_than_n_is_reported_at_initial_samples(
    alice: Any, small_model: Any, prompts: Any, demo_tools: list[Any]
) -> None:
    run = _create(alice, small_model, prompts, demo_tools, **{"rollout.group_size": 4, "rollout.initial_samples": 8})
    assert not run.launchable
    assert "rollout.group_size (M=4)" in run.errors["rollout.initial_samples"][0]


def test_every_engine_problem_is_listed_not_only_the_first(
    alice: Any, small_model: Any, prompts: Any, demo_tools: list[Any]
) -> None:
    run = _create(alice, small_model, prompts, demo_tools, **{"rollout.initial_samples": 32, "branching.beam_width": 1})
    assert set(run.errors) == {"rollout.initial_samples", "branching.beam_width"}


def test_prompt_longer_than_the_budget_is_reported_at_max_prompt_tokens(
    alice: Any, small_model: Any, prompts: Any, demo_tools: list[Any]
) -> None:
    run = _create(alice, small_model, prompts, demo_tools, **{"data.max_prompt_tokens": 100})
    [message] = run.errors["data.max_prompt_tokens"]
    assert "line 1: the prompt has" in message and "over data.max_prompt_tokens=100" in message


def test_tool_the_data_names_but_nobody_defined_is_reported_at_tools(
    alice: Any, small_model: Any, python_tool: Any
) -> None:
    dataset = make_prompts(alice, rows=5, edit=lambda row: row.update(tools=["python", "web_browser"]))
    run = _create(alice, small_model, dataset, [python_tool])
    assert "'web_browser' is not defined" in run.errors["tools"][0]
    assert "python'" not in run.errors["tools"][0]


def test_max_model_len_over_the_base_models_limit_is_reported_at_its_field(
    alice: Any, small_model: Any, prompts: Any, demo_tools: list[Any]
) -> None:
    run = _create(alice, small_model, prompts, demo_tools, **{"model.max_model_len": small_model.max_model_len + 1})
    assert "takes at most" in run.errors["model.max_model_len"][0]


def test_budget_over_max_model_len_is_a_warning_not_an_error(
    alice: Any, small_model: Any, prompts: Any, demo_tools: list[Any]
) -> None:
    run = _create(alice, small_model, prompts, demo_tools)  # paper defaults: 1024 + 4096 > 4096
    assert run.launchable
    assert any("exceed model.max_model_len" in w for w in run.warnings)


def test_a_sft_dataset_in_place_of_prompts_is_refused(alice: Any, small_model: Any, sft_demos: Any) -> None:
    from webapp.core.errors import DomainError

    with pytest.raises(DomainError) as caught:
        _create(alice, small_model, sft_demos, [])
    assert "dataset" in caught.value.fields


def test_unknown_override_key_is_refused_with_its_dotted_key(alice: Any, small_model: Any, prompts: Any) -> None:
    from webapp.core.errors import DomainError

    with pytest.raises(DomainError) as caught:
        _create(alice, small_model, prompts, [], **{"rollout.grup_size": 8})
    assert list(caught.value.fields) == ["rollout.grup_size"]
    assert Run.objects.count() == 0


def test_managed_keys_cannot_be_typed_in(alice: Any, small_model: Any, prompts: Any) -> None:
    from webapp.core.errors import DomainError

    with pytest.raises(DomainError) as caught:
        _create(alice, small_model, prompts, [], **{"data.train_path": "/etc/passwd"})
    assert "choosing the run's dataset" in caught.value.fields["data.train_path"][0]


def test_checking_the_whole_demo_dataset_takes_under_three_seconds(
    alice: Any, small_model: Any, demo_tools: list[Any]
) -> None:
    dataset = make_prompts(alice, rows=2000)
    started = time.perf_counter()
    run = _create(alice, small_model, dataset, demo_tools, **{"rollout.group_size": 8, "rollout.initial_samples": 4})
    elapsed = time.perf_counter() - started
    assert run.launchable
    assert elapsed < 3.0, f"validating 2000 + 20 prompts took {elapsed:.2f} s"


def test_light_tokenizer_counts_the_same_tokens_as_transformers(small_model: Any) -> None:
    from transformers import AutoTokenizer

    from arpo_engine.data import load_samples
    from arpo_engine.rollout.agent import build_prompt_ids
    from webapp.runs.prompt_tokens import LightTokenizer

    from .conftest import DEMO

    folder = small_model.local_folder()
    light, heavy = LightTokenizer(folder), AutoTokenizer.from_pretrained(folder)
    for sample in load_samples(DEMO / "train.jsonl")[:50]:
        assert build_prompt_ids(light, sample.messages, "Use the tools.") == build_prompt_ids(
            heavy, sample.messages, "Use the tools."
        )
