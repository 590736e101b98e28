import subprocess
import sys

import pytest

from arpo_engine.config import ConfigError, RunConfig, load_config


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


def test_presets_load_and_differ_in_what_defines_the_algorithm(tmp_path):
    from arpo_engine.config import load_config, preset_names

    assert {"arpo_paper", "grpo_baseline", "aepo"} <= set(preset_names())
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("rollout: {group_size: 4, initial_samples: 2}\ndata: {train_path: train.jsonl}\n")
    arpo = load_config(cfg_file, preset="arpo_paper")
    grpo = load_config(cfg_file, preset="grpo_baseline")
    aepo = load_config(cfg_file, preset="aepo")
    assert arpo.branching.enabled and not grpo.branching.enabled
    assert aepo.branching.dynamic_budget and aepo.algorithm.entropy_balanced_clip
    assert arpo.rollout.group_size == grpo.rollout.group_size == 4  # sizes stay with the run config
    assert arpo.data.train_path == str(tmp_path / "train.jsonl")


def test_unknown_preset_names_the_known_ones(tmp_path):
    from arpo_engine.config import load_config

    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("seed: 1\n")
    with pytest.raises(ConfigError, match="grpo_baseline"):
        load_config(cfg_file, preset="grpo")


def test_invalid_yaml_is_a_config_error(tmp_path):
    from arpo_engine.config import load_config

    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("rollout: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(cfg_file)


def test_unknown_learner_precision_is_rejected_with_the_valid_choices():
    with pytest.raises(ConfigError, match=r"optim\.precision must be auto, fp32 or bf16, not 'fp16'"):
        RunConfig.from_dict({"optim": {"precision": "fp16"}}).validate()


@pytest.mark.parametrize(
    ("optim", "message"),
    [
        (
            {"tree_attention": "dense"},
            r"optim\.tree_attention must be one of auto, segments, flex, varlen, not 'dense'",
        ),
        ({"tree_attention": "flex", "device": "cpu"}, r"tree_attention=flex runs on CUDA only"),
        ({"tree_attention": "varlen", "device": "cpu"}, r"tree_attention=varlen runs on CUDA only"),
        ({"tree_attention": "varlen", "precision": "fp32"}, r"varlen needs optim\.precision bf16"),
    ],
)
def test_tree_attention_that_cannot_run_is_rejected_before_the_run(optim, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict({"optim": optim}).validate()
    assert RunConfig.from_dict(
        {"optim": {"tree_attention": "varlen", "device": "cuda", "precision": "bf16"}}
    ).validate()


def test_relative_paths_resolve_against_the_config_file_not_the_working_directory(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "run.yaml").write_text(
        "data: {train_path: ../data/train.jsonl}\ncheckpoint: {dir: ../runs}\nmodel: {path: smollm2-135m}\n"
    )
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    config = load_config(folder / "run.yaml")
    assert config.checkpoint.dir == str(tmp_path / "runs")
    assert config.data.train_path == str(tmp_path / "data" / "train.jsonl")
    assert config.model.path == "smollm2-135m"  # a bundled name, not a folder


def test_a_decode_batch_of_no_requests_is_rejected():
    with pytest.raises(ConfigError, match=r"rollout\.max_batch_size must be at least 1"):
        RunConfig.from_dict({"rollout": {"max_batch_size": 0}}).validate()
