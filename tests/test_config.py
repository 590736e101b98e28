import subprocess
import sys

import pytest

from arpo_engine.config import ConfigError, RunConfig


def test_defaults_are_the_paper_defaults():
    cfg = RunConfig()
    assert (cfg.rollout.group_size, cfg.rollout.initial_samples) == (16, 8)
    assert (cfg.branching.entropy_window, cfg.branching.alpha, cfg.branching.beta) == (20, 0.5, 0.2)
    assert cfg.branching.beam_width == 2


def test_unknown_key_is_rejected_with_its_dotted_name():
    with pytest.raises(ConfigError, match=r"rollout\.group_sise"):
        RunConfig.from_dict({"rollout": {"group_sise": 4}})


def test_wrong_type_is_rejected_with_its_dotted_name():
    with pytest.raises(ConfigError, match=r"branching\.alpha: expected a number"):
        RunConfig.from_dict({"branching": {"alpha": "high"}})
    with pytest.raises(ConfigError, match=r"branching\.rule: 'random' is not one of"):
        RunConfig.from_dict({"branching": {"rule": "random"}})


def test_initial_samples_above_group_size_is_rejected():
    cfg = RunConfig.from_dict({"rollout": {"group_size": 4, "initial_samples": 8}})
    with pytest.raises(ConfigError, match="initial_samples"):
        cfg.validate()


def test_tools_round_trip_through_dicts():
    raw = {"tools": [{"name": "python", "kind": "python", "options": {"timeout_s": 5}}]}
    cfg = RunConfig.from_dict(raw)
    assert cfg.tools[0].options["timeout_s"] == 5
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_duplicate_tool_names_are_rejected():
    tool = {"name": "python", "kind": "python"}
    with pytest.raises(ConfigError, match="duplicate tool"):
        RunConfig.from_dict({"tools": [tool, tool]}).validate()


def test_config_module_imports_without_torch_ray_or_vllm():
    code = (
        "import sys; import arpo_engine.config; "
        "bad = [m for m in ('torch', 'ray', 'vllm', 'transformers', 'django') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
