"""Bundled models: the GGUF conversion, its reuse, model path resolution and the tiny test model."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from arpo_engine.models import BUNDLED, build_tiny_model, model_dir, prepare, resolve_model_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_prepare_converts_into_arpo_home_once_and_then_reuses_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARPO_HOME", str(tmp_path))
    first = prepare("smollm2-135m")
    assert first == tmp_path / "models" / "smollm2-135m"
    names = {p.name for p in first.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "tokenizer_config.json", "chat_template.jinja"} <= names
    # Built in a temporary folder beside the target and renamed: nothing else is left behind.
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["smollm2-135m"]
    written = (first / "model.safetensors").stat().st_mtime_ns

    assert prepare("smollm2-135m") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == written


def test_prepared_folder_is_a_plain_float32_llama_without_quantization(smollm2_dir: Path) -> None:
    config = AutoConfig.from_pretrained(smollm2_dir)
    assert config.model_type == "llama"
    assert config.vocab_size == 49152
    assert getattr(config, "quantization_config", None) is None
    assert str(config.dtype).removeprefix("torch.") == "float32"


@pytest.mark.slow
def test_prepared_model_loads_with_plain_transformers_and_answers_a_chat_question(smollm2_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model: Any = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    assert tokenizer.chat_template and tokenizer.eos_token == "<|im_end|>"
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True, tokenize=True, return_dict=False,
    )
    out = model.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False)
    answer = tokenizer.decode(out[0, len(prompt):], skip_special_tokens=True)
    assert "Paris" in answer


def test_resolve_model_path_turns_a_bundled_name_into_its_prepared_folder(smollm2_dir: Path) -> None:
    assert resolve_model_path("smollm2-135m") == smollm2_dir == model_dir("smollm2-135m")


def test_resolve_model_path_accepts_an_existing_model_folder(tiny_model_dir: Path) -> None:
    assert resolve_model_path(str(tiny_model_dir)) == tiny_model_dir.resolve()


def test_resolve_model_path_rejects_anything_else_and_lists_the_bundled_names(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as excinfo:
        resolve_model_path(str(tmp_path / "no-such-model"))
    for name in BUNDLED:
        assert name in str(excinfo.value)
    with pytest.raises(FileNotFoundError):
        resolve_model_path(str(tmp_path))  # a folder, but without config.json


def test_tiny_model_shares_the_smollm2_vocabulary_and_chat_template(tiny_model_dir: Path, smollm2_dir: Path) -> None:
    config = AutoConfig.from_pretrained(tiny_model_dir)
    assert config.vocab_size == AutoConfig.from_pretrained(smollm2_dir).vocab_size == 49152
    assert config.num_hidden_layers == 2
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(smollm2_dir).chat_template
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                           tokenize=True, return_dict=False)
    logits = model(torch.tensor([prompt])).logits
    assert logits.shape == (1, len(prompt), 49152)


def test_tiny_model_is_reproducible_from_its_seed(tmp_path: Path) -> None:
    a = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "a", seed=3))
    b = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "b", seed=3))
    c = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "c", seed=4))
    weight = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(a.state_dict()[weight], b.state_dict()[weight])
    assert not torch.equal(a.state_dict()[weight], c.state_dict()[weight])


def test_cli_prepare_prints_where_the_model_is(smollm2_dir: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "arpo_engine.models", "prepare", "smollm2-135m"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    assert str(smollm2_dir) in out.stdout


def test_cli_tiny_builds_a_model_folder(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "arpo_engine.models", "tiny", str(tmp_path / "tiny")],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    assert str(tmp_path / "tiny") in out.stdout
    assert (tmp_path / "tiny" / "config.json").is_file()
    assert (tmp_path / "tiny" / "tokenizer.json").is_file()
