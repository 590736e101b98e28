"""Checkpoints: a plain Hugging Face download folder per step, aliases, pruning, crash-safe resume."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from arpo_engine.agent_spec import portable
from arpo_engine.checkpoint import (
    COMPLETE,
    CheckpointManager,
    DataPosition,
    find_resume_point,
    load_model,
    load_resume_state,
    restore_optimizer,
)
from arpo_engine.config import RunConfig
from arpo_engine.models import build_tiny_model

DOWNLOAD_FILES = {
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "run.json",
    "README.md",
}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def tokenizer(tiny_dir: Path) -> Any:
    return AutoTokenizer.from_pretrained(tiny_dir)


@pytest.fixture
def run_config(tiny_dir: Path) -> dict[str, object]:
    return RunConfig.from_dict({"name": "demo", "model": {"path": str(tiny_dir)}, "train": {"steps": 5}}).to_dict()


def load_tiny(path: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).train()


def new_optimizer(model: torch.nn.Module) -> torch.optim.AdamW:
    # Trainable parameters only: with LoRA the base weights are frozen.
    trainable = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(trainable, lr=1e-2, weight_decay=0.01)


def batch(step: int) -> torch.Tensor:
    return torch.randint(0, 49152, (2, 12), generator=torch.Generator().manual_seed(100 + step))


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
    ids = batch(step)
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def save_steps(
    manager: CheckpointManager,
    model: torch.nn.Module,
    tokenizer: Any,
    config: dict[str, object],
    metrics: dict[int, float],
) -> None:
    for step, value in metrics.items():
        manager.save(step, model, tokenizer, run_config=config, metrics={"eval/accuracy": value}, best_metric=value)


def test_step_folder_is_a_hugging_face_folder_that_loads_with_equal_weights(
    tmp_path: Path, tiny_dir: Path, tokenizer: Any, run_config: dict[str, object]
) -> None:
    model = load_tiny(tiny_dir)
    manager = CheckpointManager(tmp_path, "r1", keep_last=3)
    folder = manager.save(
        3, model, tokenizer, run_config=run_config, metrics={"reward/mean": 0.5, "loss/kl": float("nan")}
    )

    assert folder == tmp_path / "run-r1" / "step-3"
    assert {p.name for p in folder.iterdir()} >= DOWNLOAD_FILES
    loaded = AutoModelForCausalLM.from_pretrained(folder)
    assert type(loaded) is LlamaForCausalLM
    expected = model.state_dict()
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    loaded_tokenizer = AutoTokenizer.from_pretrained(folder)
    assert loaded_tokenizer.chat_template == tokenizer.chat_template
    assert (folder / "chat_template.jinja").read_text() == tokenizer.chat_template


def test_run_json_and_model_card_describe_the_step(
    tmp_path: Path, tiny_dir: Path, tokenizer: Any, run_config: dict[str, object]
) -> None:
    folder = CheckpointManager(tmp_path, "r1").save(
        3,
        load_tiny(tiny_dir),
        tokenizer,
        run_config=run_config,
        metrics={"eval/accuracy": 0.25, "loss/kl": float("nan")},
    )

    info = json.loads((folder / "run.json").read_text())
    assert info["step"] == 3 and info["run_id"] == "r1" and info["algorithm"] == "ARPO"
    assert info["base_model"] == tiny_dir.name  # a name, never a path of the machine that trained it
    assert info["metrics"] == {"eval/accuracy": 0.25, "loss/kl": None}  # NaN is not JSON
    assert info["run_config"] == portable(run_config)  # absolute paths cut to their last part
    assert RunConfig.from_dict(info["run_config"]).name == "demo"
    card = (folder / "README.md").read_text()
    assert str(tiny_dir) not in card and f'base_model: "{tiny_dir.name}"' in card
    assert "ARPO" in card and "eval/accuracy" in card
    assert "AutoModelForCausalLM.from_pretrained" in card and "from vllm import LLM" in card


def test_resume_state_lives_beside_the_download_folder_not_inside_it(
    tmp_path: Path, tiny_dir: Path, tokenizer: Any, run_config: dict[str, object]
) -> None:
    model = load_tiny(tiny_dir)
    optimizer = new_optimizer(model)
    train_step(model, optimizer, 0)
    folder = CheckpointManager(tmp_path, "r1").save(1, model, tokenizer, run_config=run_config, optimizer=optimizer)

    names = {p.name for p in folder.iterdir()}
    assert not {n for n in names if "optimizer" in n or "rng" in n or n == COMPLETE}
    resume_dir = tmp_path / "run-r1" / "resume" / "step-1"
    assert {"optimizer.json", "optimizer.safetensors", "rng.json", "rng.safetensors", COMPLETE} <= {
        p.name for p in resume_dir.iterdir()
    }


def test_latest_and_best_aliases_are_relative_links_to_the_newest_and_highest_steps(
    tmp_path: Path, tiny_dir: Path, tokenizer: Any, run_config: dict[str, object]
) -> None:
    manager = CheckpointManager(tmp_path, "r1", keep_last=0)
    save_steps(manager, load_tiny(tiny_dir), tokenizer, run_config, {1: 0.2, 2: 0.7, 3: 0.5, 4: 0.7})

    run_dir = tmp_path / "run-r1"
    assert os.readlink(run_dir / "latest") == "step-4"
    assert os.readlink(run_dir / "best") == "step-2"  # a tie keeps the earlier step
    assert manager.latest() == run_dir / "step-4"
    assert manager.best() == run_dir / "step-2"
    assert not [p for p in run_dir.iterdir() if ".tmp-" in p.name]


def test_best_is_absent_until_a_metric_is_given(
    tmp_path: Path, tiny_dir: Path, tokenizer: Any, run_config: dict[str, object]
) -> None:
    manager = CheckpointManager(tmp_path, "r1")
    manager.save(1, load_tiny(tiny_dir), tokenizer, run_config=run_config)

    assert manager.best() is None
    assert manager.latest() == tmp_path / "run-r1" / "step-1"


def test_pruning_keeps_the_last_steps_and_the_best_one(
    tmp_path: Path, tiny_dir: Path, tokenizer: Any, run_config: dict[str, object]
) -> None:
    manager = CheckpointManager(tmp_path, "r1", keep_last=2)
    save_steps(manager, load_tiny(tiny_dir), tokenizer, run_config, {1: 0.1, 2: 0.9, 3: 0.3, 4: 0.4, 5: 0.2})

    run_dir = tmp_path / "run-r1"
    assert sorted(p.name for p in run_dir.glob("step-*")) == ["step-2", "step-4", "step-5"]
    assert sorted(p.name for p in (run_dir / "resume").iterdir()) == ["step-2", "step-4", "step-5"]
    assert manager.best() == run_dir / "step-2"


def test_half_written_checkpoint_is_ignored_by_find_resume_point(
    tmp_path: Path, tiny_dir: Path, tokenizer: Any, run_config: dict[str, object]
) -> None:
    manager = CheckpointManager(tmp_path, "r1", keep_last=0)
    save_steps(manager, load_tiny(tiny_dir), tokenizer, run_config, {1: 0.1, 2: 0.2})
    run_dir = tmp_path / "run-r1"
    # A crash while writing step 3's resume state: whole download folder, resume folder lacking its marker.
    shutil.copytree(run_dir / "step-2", run_dir / "step-3")
    shutil.copytree(run_dir / "resume" / "step-2", run_dir / "resume" / "step-3")
    (run_dir / "resume" / "step-3" / COMPLETE).unlink()
    # A crash while writing step 4: only the temp folder exists.
    shutil.copytree(run_dir / "step-2", run_dir / ".step-4.tmp-dead")

    point = find_resume_point(run_dir)

    assert point is not None and point.step == 2
    assert point.model_dir == run_dir / "step-2"


def test_resume_point_needs_the_download_folder_as_well(
    tmp_path: Path, tiny_dir: Path, tokenizer: Any, run_config: dict[str, object]
) -> None:
    manager = CheckpointManager(tmp_path, "r1", keep_last=0)
    save_steps(manager, load_tiny(tiny_dir), tokenizer, run_config, {1: 0.1, 2: 0.2})
    shutil.rmtree(tmp_path / "run-r1" / "step-2")

    point = manager.resume_point()

    assert point is not None and point.step == 1


def test_no_resume_point_in_an_empty_run(tmp_path: Path) -> None:
    assert find_resume_point(tmp_path / "run-none") is None
    assert CheckpointManager(tmp_path, "none").resume() is None


def test_next_save_sweeps_folders_left_by_a_crash(
    tmp_path: Path, tiny_dir: Path, tokenizer: Any, run_config: dict[str, object]
) -> None:
    run_dir = tmp_path / "run-r1"
    (run_dir / "resume" / ".step-7.tmp-dead").mkdir(parents=True)
    (run_dir / ".step-7.tmp-dead").mkdir()

    CheckpointManager(tmp_path, "r1").save(8, load_tiny(tiny_dir), tokenizer, run_config=run_config)

    assert not list(run_dir.rglob("*.tmp-*"))


def test_resumed_training_is_bitwise_identical_to_an_uninterrupted_run(
    tmp_path: Path, tiny_dir: Path, tokenizer: Any, run_config: dict[str, object]
) -> None:
    model = load_tiny(tiny_dir)
    optimizer = new_optimizer(model)
    manager = CheckpointManager(tmp_path, "r1")
    for step in range(3):
        train_step(model, optimizer, step)
    manager.save(3, model, tokenizer, run_config=run_config, optimizer=optimizer)
    train_step(model, optimizer, 3)

    state = manager.resume()
    assert state is not None and state.step == 3
    resumed = load_model(state.point)
    resumed_optimizer = new_optimizer(resumed)
    restore_optimizer(resumed_optimizer, state)
    train_step(resumed, resumed_optimizer, 3)

    expected = dict(model.named_parameters())
    for name, param in resumed.named_parameters():
        assert torch.equal(param, expected[name]), name


def test_restoring_into_an_optimizer_over_other_parameters_is_refused(
    tmp_path: Path, tiny_dir: Path, tokenizer: Any, run_config: dict[str, object]
) -> None:
    model = load_tiny(tiny_dir)
    optimizer = new_optimizer(model)
    train_step(model, optimizer, 0)
    manager = CheckpointManager(tmp_path, "r1")
    manager.save(1, model, tokenizer, run_config=run_config, optimizer=optimizer)
    state = manager.resume()
    assert state is not None

    only_norms = [p for n, p in model.named_parameters() if "norm" in n]
    with pytest.raises(ValueError, match="parameters"):
        restore_optimizer(torch.optim.AdamW(only_norms), state)


def test_restored_generators_give_the_same_next_draws(
    tmp_path: Path, tiny_dir: Path, tokenizer: Any, run_config: dict[str, object]
) -> None:
    rng: dict[str, Any] = {
        "branching": random.Random(0),
        "data": random.Random(1),
        "dropout": torch.Generator().manual_seed(2),
        "numpy": np.random.default_rng(3),
    }
    rng["branching"].random(), rng["branching"].gauss(0, 1)  # leaves a cached gauss value in the state
    torch.randn(3, generator=rng["dropout"])
    CheckpointManager(tmp_path, "r1").save(1, load_tiny(tiny_dir), tokenizer, run_config=run_config, rng=rng)
    expected = draws(rng)

    fresh: dict[str, Any] = {
        "branching": random.Random(),
        "data": random.Random(),
        "dropout": torch.Generator(),
        "numpy": np.random.default_rng(),
    }
    point = find_resume_point(tmp_path / "run-r1")
    assert point is not None
    load_resume_state(point, rng=fresh)

    assert draws(fresh) == expected


def draws(rng: dict[str, Any]) -> list[object]:
    branching, data, dropout, numpy_rng = rng["branching"], rng["data"], rng["dropout"], rng["numpy"]
    assert isinstance(branching, random.Random) and isinstance(data, random.Random)
    assert isinstance(dropout, torch.Generator) and isinstance(numpy_rng, np.random.Generator)
    return [
        branching.gauss(0, 1),
        branching.random(),
        data.sample(range(100), 5),
        torch.rand(4, generator=dropout).tolist(),
        torch.rand(2).tolist(),  # torch's global generator is restored too
        numpy_rng.integers(0, 1000, 4).tolist(),
    ]


def test_data_position_and_extras_survive_a_resume(
    tmp_path: Path, tiny_dir: Path, tokenizer: Any, run_config: dict[str, object]
) -> None:
    manager = CheckpointManager(tmp_path, "r1")
    history = [{"step": 1, "reward/mean": 0.25}]
    manager.save(
        1,
        load_tiny(tiny_dir),
        tokenizer,
        run_config=run_config,
        data_position={"epoch": 2, "index": 5, "order": [3, 1, 0, 2, 4, 6, 5]},
        extras={"metric_history": history},
    )

    state = manager.resume()

    assert state is not None
    assert state.data_position == DataPosition(epoch=2, index=5, order=(3, 1, 0, 2, 4, 6, 5))
    assert state.extras == {"metric_history": history}
    assert state.optimizer is None


def test_resume_folder_holds_only_json_and_safetensors_files(
    tmp_path: Path, tiny_dir: Path, tokenizer: Any, run_config: dict[str, object]
) -> None:
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(load_tiny(tiny_dir), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    optimizer = new_optimizer(model)
    train_step(model, optimizer, 0)
    CheckpointManager(tmp_path, "r1").save(
        1,
        model,
        tokenizer,
        run_config=run_config,
        optimizer=optimizer,
        rng={"r": random.Random(0), "t": torch.Generator(), "n": np.random.default_rng(0)},
        data_position={"epoch": 0, "index": 3},
        extras={"note": "x"},
    )

    resume_root = tmp_path / "run-r1" / "resume"
    files = [p for p in resume_root.rglob("*") if p.is_file()]
    assert files
    assert {p.suffix for p in files} == {".json", ".safetensors"}


def test_lora_model_is_saved_as_a_merged_plain_folder_with_the_same_logits(
    tmp_path: Path, tiny_dir: Path, tokenizer: Any, run_config: dict[str, object]
) -> None:
    from peft import LoraConfig, get_peft_model

    # init_lora_weights=False gives a non-zero B, so the adapter really changes the outputs.
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(load_tiny(tiny_dir), lora).eval()
    ids = batch(0)
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        base_logits = load_tiny(tiny_dir).eval()(input_ids=ids).logits

    folder = CheckpointManager(tmp_path, "r1").save(1, model, tokenizer, run_config=run_config)

    assert not [p for p in folder.iterdir() if p.name.startswith("adapter")]
    assert "lora" not in (folder / "model.safetensors").read_bytes()[:100_000].decode("latin-1")
    loaded = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert type(loaded) is LlamaForCausalLM
    with torch.no_grad():
        logits = loaded(input_ids=ids).logits
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(base_logits, expected, atol=1e-3)
    assert any("lora_A" in n for n, _ in model.named_parameters())  # the training model is untouched


def test_lora_resume_rebuilds_the_adapter_on_the_base_model(
    tmp_path: Path, tiny_dir: Path, tokenizer: Any, run_config: dict[str, object]
) -> None:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(load_tiny(tiny_dir), lora)
    optimizer = new_optimizer(model)
    train_step(model, optimizer, 0)
    manager = CheckpointManager(tmp_path, "r1")
    manager.save(1, model, tokenizer, run_config=run_config, optimizer=optimizer)
    train_step(model, optimizer, 1)

    state = manager.resume()
    assert state is not None and state.point.has_adapter
    resumed = load_model(state.point)
    resumed_optimizer = new_optimizer(resumed)
    restore_optimizer(resumed_optimizer, state)
    train_step(resumed, resumed_optimizer, 1)

    expected = dict(model.named_parameters())
    for name, param in resumed.named_parameters():
        assert torch.equal(param, expected[name]), name


@pytest.mark.slow
def test_saved_folder_generates_in_vllm(
    tmp_path: Path, tiny_dir: Path, tokenizer: Any, run_config: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    from arpo_engine.models import build_tiny_model
    from arpo_engine.pipeline import load_policy
    from arpo_engine.rollout.sampler import GenRequest
    from arpo_engine.rollout.vllm_sampler import VLLMSampler

    # build_tiny_model's head size (32) is the smallest the CPU attention kernels take.
    model, _ = load_policy(build_tiny_model(tmp_path / "tiny-vllm", seed=0))
    folder = CheckpointManager(tmp_path, "r1").save(1, model, tokenizer, run_config=run_config)

    sampler = VLLMSampler(folder, max_model_len=512, memory_fraction=0.05, seed=0)
    try:
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2 + 2?"}], tokenize=False,
                                               add_generation_prompt=True)
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        out = sampler.generate([GenRequest(ids, max_tokens=5, seed=0)], temperature=0.0, top_p=1.0)
    finally:
        sampler.close()
    assert 1 <= len(out[0].token_ids) <= 5

