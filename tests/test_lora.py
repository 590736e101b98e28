"""LoRA in the learner: only adapters train, syncs and checkpoints hold merged plain weights, resume is exact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, LlamaForCausalLM

from arpo_engine.config import AlgorithmConfig, ConfigError, OptimConfig, RunConfig, load_config
from arpo_engine.learner import Learner
from arpo_engine.logprobs import token_logprobs
from arpo_engine.lora import apply_lora, has_lora, load_adapter, merged_state_dict, save_adapter
from arpo_engine.pipeline import run_training
from tests.test_trainer import write_config, write_data
from tests.toy import VOCAB, small_llama, toy_batch

LINEAR = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def lora_learner(model: LlamaForCausalLM, **optim: Any) -> Learner:
    settings: dict[str, Any] = {"lr": 1e-2, "mini_batch_prompts": 1, "lora_rank": 4, "lora_alpha": 8}
    settings.update(optim)
    return Learner(model, optim=OptimConfig(**settings), algorithm=AlgorithmConfig(), pad_token_id=0)


def adapted_names(model: torch.nn.Module) -> set[str]:
    return {name for name, module in model.named_modules() if hasattr(module, "lora_A")}


def ids(seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(seed))


# --- config ------------------------------------------------------------------------------------------


def test_lora_rank_is_accepted_with_all_linear_targets_by_default() -> None:
    config = RunConfig.from_dict({"optim": {"lora_rank": 8}}).validate()
    assert config.optim.lora_target_modules == ("all-linear",)


@pytest.mark.parametrize(
    ("optim", "message"),
    [
        ({"lora_rank": -1}, "lora_rank must be zero"),
        ({"lora_rank": 8, "lora_alpha": 0}, "lora_alpha must be positive"),
        ({"lora_rank": 8, "lora_target_modules": []}, "at least one layer"),
        ({"lora_rank": 8, "lora_target_modules": ["all-linear", "q_proj"]}, "list it alone"),
        ({"lora_rank": 8, "lora_target_modules": ["q proj"]}, "not a module name"),
    ],
)
def test_invalid_lora_settings_are_config_errors(optim: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict({"optim": optim}).validate()


def test_a_target_the_model_does_not_have_is_a_config_error_naming_the_ones_it_has() -> None:
    with pytest.raises(ConfigError, match=r"no linear layer 'c_attn' \(it has: down_proj, gate_proj"):
        lora_learner(small_llama(), lora_target_modules=("c_attn",))


# --- the learner ------------------------------------------------------------------------------------


def test_default_targets_are_the_attention_and_mlp_projections_of_every_block_not_the_head() -> None:
    model = small_llama()
    lora_learner(model)
    part = {n: "self_attn" if n.endswith(("q_proj", "k_proj", "v_proj", "o_proj")) else "mlp" for n in LINEAR}
    assert adapted_names(model) == {f"model.layers.{i}.{part[n]}.{n}" for i in range(3) for n in LINEAR}
    assert type(model.lm_head) is torch.nn.Linear
    assert type(model.base_model).__name__ == "LlamaModel"  # token_logprobs still reaches the decoder body


def test_trainable_layers_puts_adapters_on_the_top_blocks_only() -> None:
    model = small_llama()
    lora_learner(model, trainable_layers=1)
    assert {n.split(".")[2] for n in adapted_names(model)} == {"2"}


def test_an_update_trains_only_the_adapters_and_the_optimizer_holds_only_them() -> None:
    model = small_llama()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    learner = lora_learner(model)
    held = {id(p) for group in learner.optimizer.param_groups for p in group["params"]}
    lora_params = {id(p) for n, p in model.named_parameters() if ".lora_" in n}
    assert held == lora_params and len(held) == 2 * 3 * len(LINEAR)
    assert all(not p.requires_grad for n, p in model.named_parameters() if ".lora_" not in n)

    learner.update(toy_batch())

    for key, value in model.state_dict().items():
        if ".lora_" not in key:
            assert torch.equal(value, base[key.replace(".base_layer.", ".")]), key
    assert all(p.abs().sum() > 0 for n, p in model.named_parameters() if ".lora_B." in n)  # B started at 0


def test_merged_weights_give_the_adapted_models_logits_under_the_plain_names() -> None:
    model = small_llama()
    lora_learner(model).update(toy_batch())
    merged = merged_state_dict(model)
    plain = small_llama(seed=5)
    assert list(merged) == list(plain.state_dict())
    plain.load_state_dict(merged)
    with torch.no_grad():
        adapted_logits, plain_logits = model(input_ids=ids()).logits, plain(input_ids=ids()).logits
        base_logits = small_llama()(input_ids=ids()).logits
    torch.testing.assert_close(plain_logits, adapted_logits, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(base_logits, adapted_logits, atol=1e-4)
    assert merged["lm_head.weight"].data_ptr() == merged["model.embed_tokens.weight"].data_ptr()  # still tied


def test_learner_log_probs_run_through_the_adapters() -> None:
    model = small_llama()
    lora_learner(model).update(toy_batch())
    plain = small_llama()
    plain.load_state_dict(merged_state_dict(model))
    x = ids()
    attention = torch.ones_like(x)
    with torch.no_grad():
        adapted = token_logprobs(model, x, attention).logprobs
        expected = token_logprobs(plain, x, attention).logprobs
        base = token_logprobs(small_llama(), x, attention).logprobs
    torch.testing.assert_close(adapted, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(adapted, base, atol=1e-4)


def test_the_same_seed_gives_the_same_adapters_and_leaves_the_global_rng_alone() -> None:
    a, b = small_llama(), small_llama()
    state = torch.get_rng_state()
    apply_lora(a, OptimConfig(lora_rank=4), seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    apply_lora(b, OptimConfig(lora_rank=4), seed=3)
    for (name, x), (_, y) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(x, y), name
    with pytest.raises(ValueError, match="already has LoRA"):
        apply_lora(a, OptimConfig(lora_rank=4))


def test_saved_adapter_loads_back_bit_for_bit_and_into_peft(tmp_path: Path) -> None:
    from peft import PeftModel

    model = small_llama()
    lora_learner(model).update(toy_batch())
    save_adapter(model, tmp_path)
    assert json.loads((tmp_path / "adapter_config.json").read_text())["r"] == 4

    restored = small_llama()
    apply_lora(restored, OptimConfig(lora_rank=4, lora_alpha=8), seed=9)
    load_adapter(restored, tmp_path)
    for (name, x), (_, y) in zip(model.named_parameters(), restored.named_parameters(), strict=True):
        assert torch.equal(x, y), name

    with_peft = PeftModel.from_pretrained(small_llama(), tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(with_peft(input_ids=ids()).logits, model(input_ids=ids()).logits)


def test_loading_an_adapter_saved_with_another_rank_is_refused(tmp_path: Path) -> None:
    model = small_llama()
    apply_lora(model, OptimConfig(lora_rank=4))
    save_adapter(model, tmp_path)
    other = small_llama()
    apply_lora(other, OptimConfig(lora_rank=2))
    with pytest.raises(ValueError, match="r=4"):
        load_adapter(other, tmp_path)


# --- training runs on the tiny model ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from arpo_engine.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


LORA = {"lr": 1e-2, "train_batch_prompts": 2, "mini_batch_prompts": 1, "micro_batch_tokens": 2048, "lora_rank": 4}


def lora_run(folder: Path, model: Path, steps: int, **overrides: Any) -> Any:
    write_data(folder)
    config = load_config(write_config(folder, model, optim=LORA, train__steps=steps, train__eval_every=0, **overrides))
    torch.manual_seed(0)
    result = run_training(config, log=lambda _: None)
    assert result.steps_done == steps
    return config


def adapted_model(base: Path, resume_dir: Path) -> torch.nn.Module:
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    apply_lora(model, OptimConfig(lora_rank=4))
    load_adapter(model, resume_dir)
    return model


def test_lora_run_writes_a_plain_checkpoint_with_the_adapted_models_logits(tmp_path: Path, tiny_dir: Path) -> None:
    lora_run(tmp_path, tiny_dir, steps=2)
    run_dir = tmp_path / "runs" / "run-tiny"
    latest = (run_dir / "latest").resolve()
    assert latest.name == "step-2"
    assert not [p.name for p in latest.iterdir() if p.name.startswith("adapter")]
    resume_dir = run_dir / "resume" / "step-2"
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in resume_dir.iterdir()}

    before, after = load_file(str(tiny_dir / "model.safetensors")), load_file(str(latest / "model.safetensors"))
    assert set(after) == set(before)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.rsplit(".", 2)[-2] in LINEAR for k in changed)  # embeddings and norms untouched

    loaded = AutoModelForCausalLM.from_pretrained(latest).eval()
    assert type(loaded) is LlamaForCausalLM and not has_lora(loaded)
    x = torch.randint(0, 49152, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = adapted_model(tiny_dir, resume_dir)(input_ids=x).logits
        torch.testing.assert_close(loaded(input_ids=x).logits, expected, rtol=1e-4, atol=1e-5)


def test_lora_run_resumed_from_its_checkpoint_ends_bitwise_equal_to_an_uninterrupted_run(
    tmp_path: Path, tiny_dir: Path
) -> None:
    (tmp_path / "straight").mkdir()
    (tmp_path / "resumed").mkdir()
    lora_run(tmp_path / "straight", tiny_dir, steps=3)
    adapters = [load_file(str(tmp_path / f"straight/runs/run-tiny/resume/step-{n}/adapter_model.safetensors"))
                for n in (2, 3)]  # fmt: skip
    assert any(not torch.equal(a, adapters[1][k]) for k, a in adapters[0].items()), "step 3 changed nothing"
    lora_run(tmp_path / "resumed", tiny_dir, steps=2)  # "crashes" after its step-2 checkpoint
    lora_run(tmp_path / "resumed", tiny_dir, steps=3)
    for part in ("step-3/model.safetensors", "resume/step-3/adapter_model.safetensors",
                 "resume/step-3/optimizer.safetensors"):  # fmt: skip
        straight = load_file(str(tmp_path / "straight" / "runs" / "run-tiny" / part))
        resumed = load_file(str(tmp_path / "resumed" / "runs" / "run-tiny" / part))
        assert straight.keys() == resumed.keys()
        for name, tensor in straight.items():
            assert torch.equal(tensor, resumed[name]), f"{part}: {name} differs after resume"

    write_config(tmp_path / "resumed", tiny_dir, optim={**LORA, "lora_rank": 0}, train__steps=4)
    with pytest.raises(ConfigError, match="trained LoRA adapters"):
        run_training(load_config(tmp_path / "resumed" / "run.yaml"), log=lambda _: None)


@pytest.mark.slow
def test_lora_step_with_the_vllm_sampler_pushes_merged_plain_weights(tmp_path: Path, tiny_dir: Path) -> None:
    rollout = {"sampler": "vllm", "group_size": 4, "initial_samples": 2, "max_response_tokens": 12,
               "max_tool_calls": 1, "memory_fraction": 0.05}  # fmt: skip
    write_data(tmp_path)
    config = load_config(write_config(tmp_path, tiny_dir, optim=LORA, train__steps=1, train__eval_every=0,
                                      rollout=rollout))  # fmt: skip
    history: list[dict[str, float]] = []
    result = run_training(config, log=lambda _: None, sink=lambda step, m: history.append(m))
    assert result.steps_done == 1 and history[-1]["train/sequences"] > 0
    # vLLM refuses a partial set, so every plain tensor went in, adapters merged
    assert history[-1]["sync/tensors"] == len(AutoModelForCausalLM.from_pretrained(tiny_dir).state_dict())


def test_lora_kl_reference_is_the_base_model_with_adapters_off_and_needs_no_copy() -> None:
    model = small_llama()
    learner = Learner(
        model,
        optim=OptimConfig(lr=1e-2, mini_batch_prompts=1, lora_rank=4, lora_alpha=8),
        algorithm=AlgorithmConfig(kl_coef=0.5),
        pad_token_id=0,
    )
    metrics = learner.update(toy_batch())
    assert learner.ref_model is None and metrics["loss/kl"] > 0
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}

    batch = toy_batch(seed=1)
    learner.score(batch)
    plain = Learner(small_llama(), optim=OptimConfig(), algorithm=AlgorithmConfig(), pad_token_id=0)
    expected = toy_batch(seed=1)
    plain.score(expected)  # the untouched base model's log-probs
    for got, want in zip(batch, expected, strict=True):
        assert got.ref_logprobs is not None and want.old_logprobs is not None and got.old_logprobs is not None
        torch.testing.assert_close(torch.tensor(got.ref_logprobs), torch.tensor(want.old_logprobs))
        assert not torch.allclose(torch.tensor(got.old_logprobs), torch.tensor(want.old_logprobs), atol=1e-4)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == trainable  # adapters train on
