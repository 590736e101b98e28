"""The config metadata is read from arpo_engine.config itself: every knob, with help, and no torch."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing

from arpo_engine import config_meta
from arpo_engine.config import RunConfig


def _leaf_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if dataclasses.is_dataclass(hints[f.name]):
            keys += _leaf_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def test_every_dataclass_field_has_metadata() -> None:
    assert [f.key for f in config_meta.fields()] == _leaf_keys(RunConfig)


def test_every_field_has_help_text_from_its_docstring() -> None:
    missing = [f.key for f in config_meta.fields() if not f.help.strip()]
    assert missing == []


def test_every_field_belongs_to_a_known_group() -> None:
    groups = {key for key, _ in config_meta.GROUPS}
    assert {f.group for f in config_meta.fields()} <= groups
    assert all(fields for _, _, fields in config_meta.grouped())


def test_paper_defaults_and_units_are_parsed_from_the_docstrings() -> None:
    meta = config_meta.field_map()
    assert meta["rollout.group_size"].paper_default == 16
    assert meta["optim.lr"].paper_default == 1e-6
    assert meta["algorithm.advantage"].paper_default == "soft"  # "(paper default)"
    assert meta["rollout.max_response_tokens"].unit == "tokens"
    assert meta["reward.timeout_s"].unit == "s"


def test_literal_fields_become_choices() -> None:
    meta = config_meta.field_map()
    assert meta["rollout.call_format"].type == "choice"
    assert meta["rollout.call_format"].choices == ("tags", "hermes")
    assert "python" in meta["reward.scorer"].choices


def test_paths_model_and_tools_are_managed_by_the_service() -> None:
    managed = {f.key for f in config_meta.fields() if f.managed_by}
    assert managed == {"name", "model.path", "data.train_path", "data.eval_path", "sft.data_path", "tools",
                       "checkpoint.dir"}  # fmt: skip


def test_defaults_match_the_engine() -> None:
    defaults = RunConfig().to_dict()
    for f in config_meta.fields():
        assert f.default == config_meta.get_path(defaults, f.key), f.key


def test_dotted_and_nested_keys_unflatten_to_one_mapping() -> None:
    nested = config_meta.unflatten({"rollout.group_size": 8, "rollout": {"initial_samples": 4}})
    assert nested == {"rollout": {"group_size": 8, "initial_samples": 4}}


def test_config_meta_imports_without_torch() -> None:
    code = "import sys, arpo_engine.config_meta as m; m.schema(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
