"""Clipped policy loss, dual-clip, masking, KL and AEPO's entropy-balanced clipping, checked by hand."""

from __future__ import annotations

import math

import pytest
import torch

from arpo_engine.losses import LossInputs, LossSettings, compute_loss, kl_k1, kl_low_var


def inputs_for(
    ratios: list[float], advantages: list[float], mask: list[int] | None = None, **extra: torch.Tensor
) -> LossInputs:
    """One row with old log-probs 0, so exp(logprobs) is the ratio; logprobs require grad."""
    logprobs = torch.tensor([[math.log(r) for r in ratios]], dtype=torch.float64, requires_grad=True)
    return LossInputs(
        logprobs=logprobs,
        old_logprobs=torch.zeros_like(logprobs),
        advantages=torch.tensor([advantages], dtype=torch.float64),
        mask=torch.tensor([mask if mask is not None else [1] * len(ratios)]),
        **extra,
    )


def grad_of_loss(inputs: LossInputs, settings: LossSettings | None = None) -> torch.Tensor:
    compute_loss(inputs, settings).loss.backward()
    assert inputs.logprobs.grad is not None
    return inputs.logprobs.grad[0]


# Five tokens, eps 0.2 and c = 3; per-token loss -A r, or the clipped / capped term:
#   r=1.1 A=+1 -> -1.1  (inside the clip range)
#   r=1.5 A=+1 -> -1.2  (clipped above: max(-1.5, -1.2))
#   r=0.5 A=-1 ->  0.8  (clipped below: max(0.5, 0.8))
#   r=5.0 A=-1 ->  3.0  (dual clip: max(5, 1.2) = 5 capped at -c A = 3)
#   r=0.5 A=+2 -> -1.0  (below the range but unclipped: max(-1.0, -1.6))
RATIOS = [1.1, 1.5, 0.5, 5.0, 0.5]
ADVANTAGES = [1.0, 1.0, -1.0, -1.0, 2.0]


def test_policy_loss_is_the_token_mean_of_the_clipped_surrogate() -> None:
    out = compute_loss(inputs_for(RATIOS, ADVANTAGES))
    assert float(out.policy_loss) == pytest.approx((-1.1 - 1.2 + 0.8 + 3.0 - 1.0) / 5)
    assert out.loss.item() == pytest.approx(0.1)
    assert out.num_tokens == 5


def test_clip_fractions_count_both_sides_and_the_dual_clip_separately() -> None:
    out = compute_loss(inputs_for(RATIOS, ADVANTAGES))
    assert float(out.clip_frac) == pytest.approx(2 / 5)
    assert float(out.dual_clip_frac) == pytest.approx(1 / 5)
    assert out.metrics()["clip/frac"] == pytest.approx(0.4)


def test_gradient_is_minus_advantage_times_ratio_over_tokens_and_zero_where_clipped() -> None:
    # d(-A r)/d logp = -A r; clipped and dual-capped tokens are constants.
    grad = grad_of_loss(inputs_for(RATIOS, ADVANTAGES))
    torch.testing.assert_close(
        grad, torch.tensor([-1.1 / 5, 0.0, 0.0, 0.0, -2 * 0.5 / 5], dtype=torch.float64)
    )


def test_dual_clip_caps_a_negative_advantage_token_with_a_large_ratio_at_c_times_abs_advantage() -> None:
    capped = compute_loss(inputs_for([5.0], [-2.0]))
    assert capped.loss.item() == pytest.approx(6.0)  # min(max(10, 2.4), 6)
    uncapped = compute_loss(inputs_for([5.0], [-2.0]), LossSettings(dual_clip=None))
    assert uncapped.loss.item() == pytest.approx(10.0)
    assert float(uncapped.dual_clip_frac) == 0.0


def test_dual_clip_leaves_a_negative_advantage_token_below_c_alone() -> None:
    inputs = inputs_for([2.5], [-1.0])
    assert compute_loss(inputs).loss.item() == pytest.approx(2.5)
    assert float(grad_of_loss(inputs)[0]) == pytest.approx(2.5)


def test_dual_clip_never_touches_positive_advantages() -> None:
    out = compute_loss(inputs_for([5.0], [1.0]))
    assert out.loss.item() == pytest.approx(-1.2)
    assert float(out.dual_clip_frac) == 0.0


def test_clip_bounds_are_configured_separately() -> None:
    settings = LossSettings(clip_low=0.1, clip_high=0.28)
    out = compute_loss(inputs_for([1.5, 0.5], [1.0, -1.0]), settings)
    assert out.loss.item() == pytest.approx((-1.28 + 0.9) / 2)


def test_masked_tokens_get_exactly_zero_gradient_and_do_not_change_the_loss() -> None:
    inputs = inputs_for([1.1, 1e30, 0.9], [1.0, -5.0, 2.0], mask=[1, 0, 1])
    out = compute_loss(inputs)
    assert out.loss.item() == pytest.approx((-1.1 - 2 * 0.9) / 2)
    grad = grad_of_loss(inputs)
    assert grad[1].item() == 0.0
    assert torch.isfinite(grad).all()


def test_an_all_zero_mask_gives_zero_loss_zero_gradient_and_no_nan() -> None:
    ref = torch.zeros(1, 3, dtype=torch.float64)
    inputs = inputs_for([1.1, 2.0, 0.1], [1.0, -1.0, 1.0], mask=[0, 0, 0], ref_logprobs=ref, entropies=ref)
    out = compute_loss(inputs, LossSettings(kl_coef=0.1, entropy_coef=0.01))
    assert out.loss.item() == 0.0
    assert out.num_tokens == 0
    assert all(math.isfinite(v) and v == 0.0 for v in out.metrics().values())
    assert torch.equal(grad_of_loss(inputs), torch.zeros(3, dtype=torch.float64))


def test_num_tokens_overrides_the_denominator_for_gradient_accumulation() -> None:
    out = compute_loss(inputs_for([1.0, 1.0], [1.0, 1.0]), num_tokens=8)
    assert out.loss.item() == pytest.approx(-2 / 8)


def test_low_var_kl_is_exp_of_ref_minus_logp_minus_that_difference_minus_one() -> None:
    logprobs = torch.tensor([[0.0, -1.0, -2.0]])
    ref = torch.tensor([[math.log(2.0), -1.0, -1.5]])
    expected = torch.tensor([[2.0 - math.log(2.0) - 1, 0.0, math.exp(0.5) - 0.5 - 1]])
    torch.testing.assert_close(kl_low_var(logprobs, ref), expected)


def test_low_var_kl_is_clamped_to_ten_per_token() -> None:
    assert kl_low_var(torch.tensor([[-30.0]]), torch.tensor([[0.0]])).item() == 10.0


def test_k1_kl_is_logp_minus_ref() -> None:
    torch.testing.assert_close(
        kl_k1(torch.tensor([[-1.0, -2.0]]), torch.tensor([[-1.5, -1.0]])), torch.tensor([[0.5, -1.0]])
    )


def test_kl_penalty_adds_coefficient_times_token_mean_kl() -> None:
    ref = torch.tensor([[math.log(2.0), 0.0]], dtype=torch.float64)
    inputs = inputs_for([1.0, 1.0], [0.0, 0.0], ref_logprobs=ref)
    out = compute_loss(inputs, LossSettings(kl_coef=0.5))
    kl = (2.0 - math.log(2.0) - 1) / 2
    assert float(out.kl) == pytest.approx(kl)
    assert out.loss.item() == pytest.approx(0.5 * kl)
    k1 = compute_loss(inputs, LossSettings(kl_coef=0.5, kl_type="k1"))
    assert float(k1.kl) == pytest.approx(-math.log(2.0) / 2)


def test_kl_coefficient_without_reference_log_probs_is_an_error() -> None:
    with pytest.raises(ValueError, match="ref_logprobs"):
        compute_loss(inputs_for([1.0], [1.0]), LossSettings(kl_coef=0.1))


def test_entropy_bonus_subtracts_coefficient_times_token_mean_entropy() -> None:
    entropies = torch.tensor([[1.0, 3.0, 100.0]], dtype=torch.float64)
    inputs = inputs_for([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], mask=[1, 1, 0], entropies=entropies)
    out = compute_loss(inputs, LossSettings(entropy_coef=0.1))
    assert float(out.entropy) == pytest.approx(2.0)
    assert out.loss.item() == pytest.approx(-0.2)


def test_entropy_balanced_clipping_keeps_the_forward_value_of_standard_clipping() -> None:
    standard = compute_loss(inputs_for(RATIOS, ADVANTAGES))
    balanced = compute_loss(inputs_for(RATIOS, ADVANTAGES), LossSettings(policy_loss="entropy_balanced"))
    assert balanced.loss.item() == pytest.approx(standard.loss.item())
    assert float(balanced.clip_frac) == pytest.approx(float(standard.clip_frac))


def test_entropy_balanced_clipping_gives_a_clipped_positive_token_gradient_one_plus_eps_times_advantage() -> (
    None
):
    # Token 0 (r=1.5, A=2) is clipped above: standard gradient 0, AEPO -(1 + 0.2) * 2 / 2 tokens.
    inputs = inputs_for([1.5, 1.1], [2.0, 1.0])
    grad = grad_of_loss(inputs, LossSettings(policy_loss="entropy_balanced"))
    torch.testing.assert_close(grad, torch.tensor([-1.2 * 2.0 / 2, -1.1 / 2], dtype=torch.float64))
    assert float(grad_of_loss(inputs_for([1.5, 1.1], [2.0, 1.0]))[0]) == 0.0


def test_entropy_balanced_clipping_leaves_the_lower_bound_and_dual_clip_as_in_standard_clipping() -> None:
    settings = LossSettings(policy_loss="entropy_balanced")
    grad = grad_of_loss(inputs_for([0.5, 5.0, 2.0], [-1.0, -1.0, -1.0]), settings)
    torch.testing.assert_close(grad, torch.tensor([0.0, 0.0, 2.0 / 3], dtype=torch.float64))


def test_unknown_policy_loss_and_kl_names_are_rejected_with_the_known_names() -> None:
    with pytest.raises(ValueError, match="entropy_balanced, ppo_clip"):
        LossSettings(policy_loss="reinforce")
    with pytest.raises(ValueError, match="k1, k3, low_var_kl"):
        LossSettings(kl_type="k2")


def test_a_dual_clip_constant_of_at_most_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="dual_clip"):
        LossSettings(dual_clip=1.0)


def test_loss_works_on_a_padded_batch_of_two_rows() -> None:
    logprobs = torch.log(torch.tensor([[1.1, 1.5, 1.0], [0.5, 1.0, 1.0]])).requires_grad_()
    out = compute_loss(
        LossInputs(
            logprobs=logprobs,
            old_logprobs=torch.zeros(2, 3),
            advantages=torch.tensor([[1.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]),
            mask=torch.tensor([[1, 1, 0], [1, 0, 0]]),
        )
    )
    assert out.loss.item() == pytest.approx((-1.1 - 1.2 + 0.8) / 3)
