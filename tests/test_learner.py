"""Learner: the on-policy shortcut for old log-probs, micro-batch accumulation, masks, frozen layers."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from transformers import LlamaForCausalLM

from arpo_engine import device
from arpo_engine.config import AlgorithmConfig, OptimConfig
from arpo_engine.learner import Learner, TrainSequence
from tests.toy import small_llama, toy_batch


@pytest.fixture(scope="module")
def base_model() -> LlamaForCausalLM:
    return small_llama()


def make_batch(seed: int = 0) -> list[TrainSequence]:
    return toy_batch(seed, lengths=(12, 15))


def learner_for(model: LlamaForCausalLM, **optim: object) -> Learner:
    settings: dict[str, object] = {"lr": 1e-2, "mini_batch_prompts": 1, "micro_batch_tokens": 4096}
    settings.update(optim)
    return Learner(model, optim=OptimConfig(**settings), algorithm=AlgorithmConfig(), pad_token_id=0)  # type: ignore[arg-type]


def params(model: LlamaForCausalLM) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def assert_same_update(base: LlamaForCausalLM, a: LlamaForCausalLM, b: LlamaForCausalLM) -> None:
    """Adam normalises each coordinate, so compare whole updates, not single near-zero coordinates."""
    before, after_a, after_b = params(base), params(a), params(b)
    delta_a = torch.cat([(after_a[n] - before[n]).flatten() for n in before])
    delta_b = torch.cat([(after_b[n] - before[n]).flatten() for n in before])
    assert delta_b.norm() > 0, "the update did not move any parameter"
    assert (delta_a - delta_b).norm() / delta_b.norm() < 1e-3


def with_sgd(learner: Learner) -> Learner:
    """Plain SGD: the update is the (clipped) gradient itself, which Adam's sign-like first step would hide."""
    learner.optimizer = torch.optim.SGD([p for p in learner.model.parameters() if p.requires_grad], lr=0.1)
    return learner


def test_update_without_scoring_first_equals_update_after_an_explicit_scoring_pass(base_model):
    shortcut, scored = copy.deepcopy(base_model), copy.deepcopy(base_model)
    batch_a, batch_b = make_batch(), make_batch()
    learner_a = learner_for(shortcut)
    metrics = learner_a.update(batch_a)  # two mini-batches: the second must still see pre-update log-probs
    learner_b = learner_for(scored)
    learner_b.score(batch_b)
    learner_b.update(batch_b)

    assert metrics["learner/updates"] == 2
    for a, b in zip(batch_a, batch_b, strict=True):
        assert a.old_logprobs is not None and b.old_logprobs is not None
        torch.testing.assert_close(torch.tensor(a.old_logprobs), torch.tensor(b.old_logprobs), rtol=1e-5, atol=1e-5)
    assert_same_update(base_model, shortcut, scored)


def test_micro_batches_accumulate_to_the_same_step_as_one_batch(base_model):
    one, many = copy.deepcopy(base_model), copy.deepcopy(base_model)
    learner_for(one, mini_batch_prompts=2).update(make_batch())
    learner_for(many, mini_batch_prompts=2, micro_batch_tokens=20).update(make_batch())
    assert_same_update(base_model, one, many)


def test_advantages_on_masked_tool_tokens_do_not_change_the_update(base_model):
    plain, noisy = copy.deepcopy(base_model), copy.deepcopy(base_model)
    batch = make_batch()
    learner_for(plain).update(batch)
    altered = make_batch()
    for s in altered:
        s.advantages = [a if m else 100.0 for a, m in zip(s.advantages, s.mask, strict=True)]
    learner_for(noisy).update(altered)
    assert_same_update(base_model, noisy, plain)


def test_trainable_layers_leaves_embeddings_and_lower_blocks_untouched(base_model):
    model = copy.deepcopy(base_model)
    learner_for(model, trainable_layers=1).update(make_batch())
    after = params(model)
    for name, before in base_model.named_parameters():
        moved = not torch.equal(after[name], before)
        top = name.startswith("model.layers.2.") or name == "model.norm.weight"
        if not top:
            assert not moved, f"{name} changed although it is frozen"
    assert any(
        not torch.equal(after[n], p) for n, p in base_model.named_parameters() if n.startswith("model.layers.2.")
    )


def test_bf16_autocast_takes_nearly_the_same_step_as_fp32(base_model, monkeypatch):
    # bf16 for real, also on CPUs that only emulate it (slow there, but this model is tiny)
    monkeypatch.setattr(device, "native_bf16", lambda _device: True)
    exact, mixed = copy.deepcopy(base_model), copy.deepcopy(base_model)
    learner_for(exact, lr=1e-3).update(make_batch())
    bf16 = learner_for(mixed, lr=1e-3, precision="bf16")
    assert bf16.precision == "bf16" and bf16.precision_note is None
    bf16.update(make_batch())
    before, after_a, after_b = params(base_model), params(exact), params(mixed)
    delta_a = torch.cat([(after_a[n] - before[n]).flatten() for n in before])
    delta_b = torch.cat([(after_b[n] - before[n]).flatten() for n in before])
    assert all(p.dtype == torch.float32 for p in mixed.parameters())
    assert torch.nn.functional.cosine_similarity(delta_a, delta_b, dim=0) > 0.9


def test_bf16_without_native_support_trains_in_fp32_and_says_why(base_model, monkeypatch):
    monkeypatch.setattr(device, "native_bf16", lambda _device: False)
    exact, asked_bf16 = copy.deepcopy(base_model), copy.deepcopy(base_model)
    learner_for(exact, lr=1e-3).update(make_batch())
    learner = learner_for(asked_bf16, lr=1e-3, precision="bf16")
    assert learner.precision == "fp32"
    assert "no native bf16 matrix products" in learner.precision_note and "training in fp32" in learner.precision_note
    learner.update(make_batch())
    after_exact, after_fallback = params(exact), params(asked_bf16)
    assert all(torch.equal(after_exact[n], after_fallback[n]) for n in after_exact)


def test_cpu_bf16_counts_as_native_only_with_bf16_instructions():
    # oneDNN reports bf16 support on any AVX512 CPU, where the products are converted in software
    # and run slower than fp32; only AVX512-BF16 or AMX make bf16 the faster choice.
    flags = set(Path("/proc/cpuinfo").read_text().split())
    assert device.native_bf16(torch.device("cpu")) == bool({"avx512_bf16", "amx_bf16"} & flags)


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_is_bf16_only_where_the_device_has_it(base_model, monkeypatch, native, expected):
    monkeypatch.setattr(device, "native_bf16", lambda _device: native)
    learner = learner_for(copy.deepcopy(base_model), precision="auto")
    assert (learner.precision, learner.precision_note) == (expected, None)


def test_kl_penalty_runs_through_the_learner_against_a_frozen_reference(base_model):
    reference, with_kl, without_kl = (copy.deepcopy(base_model) for _ in range(3))
    learner = Learner(
        with_kl,
        optim=OptimConfig(lr=1e-2, mini_batch_prompts=1, micro_batch_tokens=4096),
        algorithm=AlgorithmConfig(kl_coef=1.0),
        pad_token_id=0,
        ref_model=reference,
    )
    first = learner.update(make_batch())
    second = learner.update(make_batch(seed=1))
    learner_for(without_kl).update(make_batch())
    learner_for(without_kl).update(make_batch(seed=1))

    # the first optimizer step starts at the reference; every later one has moved away from it
    assert first["loss/kl"] > 0 and second["loss/kl"] > 0
    assert all(not p.requires_grad for p in reference.parameters())
    assert all(torch.equal(a, b) for a, b in zip(reference.parameters(), base_model.parameters(), strict=True))
    moved = sum(
        float((a - b).detach().norm()) for a, b in zip(with_kl.parameters(), without_kl.parameters(), strict=True)
    )
    assert moved > 0, "the KL term did not change the update"


def test_kl_without_a_reference_model_is_refused_unless_lora_provides_one(base_model):
    with pytest.raises(ValueError, match="reference model"):
        Learner(copy.deepcopy(base_model), optim=OptimConfig(), algorithm=AlgorithmConfig(kl_coef=0.1), pad_token_id=0)


def test_entropy_aware_advantage_is_standardized_over_the_mini_batch_whatever_the_micro_batch_size(base_model):
    one, many = copy.deepcopy(base_model), copy.deepcopy(base_model)
    aepo = AlgorithmConfig(entropy_aware_advantage=True)
    for model, micro in ((one, 4096), (many, 20)):
        learner = Learner(model, optim=OptimConfig(mini_batch_prompts=2, micro_batch_tokens=micro), algorithm=aepo,
                          pad_token_id=0)  # fmt: skip
        with_sgd(learner).update(make_batch())
    assert_same_update(base_model, one, many)  # z per micro-batch (the old way) is 3 % off here
    plain = copy.deepcopy(base_model)
    learner_for(plain, mini_batch_prompts=2).update(make_batch())
    delta = sum(float((a - b).detach().norm()) for a, b in zip(one.parameters(), plain.parameters(), strict=True))
    assert delta > 0, "the entropy-aware advantage did not change the update"


def test_the_learner_logs_policy_entropy_every_step_without_any_entropy_option(base_model):
    metrics = learner_for(copy.deepcopy(base_model)).update(make_batch())
    # a random 300-token model is near uniform: entropy close to ln 300
    assert 0.9 * math.log(300) < metrics["entropy/token_mean"] <= math.log(300) + 1e-4


def test_an_entropy_bonus_raises_the_policy_entropy(base_model):
    def second_update(coef: float) -> dict[str, float]:
        aepo = AlgorithmConfig(entropy_coef=coef)
        learner = Learner(copy.deepcopy(base_model), optim=OptimConfig(mini_batch_prompts=2), algorithm=aepo,
                          pad_token_id=0)  # fmt: skip
        with_sgd(learner).update(make_batch())
        return learner.update(make_batch())  # measures the entropy the first update left

    assert second_update(50.0)["entropy/token_mean"] > second_update(0.0)["entropy/token_mean"] + 1e-4


def test_entropy_balanced_clipping_keeps_a_gradient_on_clipped_positive_tokens_in_the_learner(base_model):
    def update(balanced: bool) -> dict[str, float]:
        algorithm = AlgorithmConfig(entropy_balanced_clip=balanced)
        learner = Learner(copy.deepcopy(base_model), optim=OptimConfig(mini_batch_prompts=2), algorithm=algorithm,
                          pad_token_id=0)  # fmt: skip
        batch = make_batch()
        learner.score(batch)
        for s in batch:  # every token positive, its ratio e > 1 + eps: all clipped
            s.advantages = [1.0] * len(s.advantages)
            s.old_logprobs = [lp - 1.0 for lp in s.old_logprobs or []]
        return with_sgd(learner).update(batch)

    standard, balanced = update(False), update(True)
    assert standard["clip/frac"] == pytest.approx(1.0) and balanced["clip/frac"] == pytest.approx(1.0)
    assert standard["grad/norm"] == 0.0
    assert balanced["grad/norm"] > 0
