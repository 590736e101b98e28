"""Policy loss: clipped PPO objective with dual-clip, optional KL and entropy terms (ARPO_SPEC.md §5-6).

`compute_loss(LossInputs, LossSettings) -> LossOutputs`. All per-token tensors are (B, T) and aligned:
`mask` is 1 on trained model tokens, 0 on prompt, tool-result and padding tokens. The loss is a
token-mean over the valid tokens of the mini-batch (official scripts), so every token weighs the
same however long its path is.

Policy-loss variants, chosen by name from `POLICY_LOSSES`:
- `ppo_clip`: ratio clipped to [1 - eps_low, 1 + eps_high], dual-clip c for negative advantages.
- `entropy_balanced` (AEPO, §6): the upper clip bound is (1 + eps_high) / sg(r) * r, equal to
  1 + eps_high in value, so clipped positive-advantage tokens keep a gradient of (1 + eps_high) * A.
KL estimators, chosen by name from `KL_ESTIMATORS`: `k1` and `low_var_kl` (alias `k3`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

import torch

LOG_RATIO_LIMIT = 20.0
"""Log-ratios are clamped to this before exp: padding can hold any log-prob, and exp(inf) * 0 is NaN."""
LOW_VAR_KL_LIMIT = 10.0
"""The k3 estimate is clamped to +-10 per token: one token far off the reference must not dominate."""


@dataclass(frozen=True)
class LossSettings:
    policy_loss: str = "ppo_clip"
    """A key of `POLICY_LOSSES`: `ppo_clip` (ARPO) or `entropy_balanced` (AEPO)."""
    clip_low: float = 0.2
    """eps_low: the ratio is clipped from below at 1 - eps_low (paper: 0.2)."""
    clip_high: float = 0.2
    """eps_high: the ratio is clipped from above at 1 + eps_high (paper: 0.2)."""
    dual_clip: float | None = 3.0
    """c: per-token loss of a negative-advantage token is at most -c * A (paper: 3); None disables."""
    kl_coef: float = 0.0
    """Weight of the KL penalty against the reference policy (paper: 0)."""
    kl_type: str = "low_var_kl"
    """A key of `KL_ESTIMATORS`: `low_var_kl` / `k3` or `k1`."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus subtracted from the loss (paper: 0)."""

    def __post_init__(self) -> None:
        if self.policy_loss not in POLICY_LOSSES:
            raise ValueError(f"unknown policy loss {self.policy_loss!r} (known: {_names(POLICY_LOSSES)})")
        if self.kl_type not in KL_ESTIMATORS:
            raise ValueError(f"unknown KL estimator {self.kl_type!r} (known: {_names(KL_ESTIMATORS)})")
        if not (0 <= self.clip_low < 1 and self.clip_high >= 0):
            raise ValueError("clip_low must be in [0, 1) and clip_high at least 0")
        if self.dual_clip is not None and self.dual_clip <= 1:
            raise ValueError("dual_clip (c) must exceed 1, or be None")


@dataclass(frozen=True)
class LossInputs:
    logprobs: torch.Tensor
    """(B, T) log-probs of the taken tokens under the policy being trained (carries the gradient)."""
    old_logprobs: torch.Tensor
    """(B, T) log-probs under the policy that sampled, recomputed by the trainer."""
    advantages: torch.Tensor
    """(B, T) per-token advantages."""
    mask: torch.Tensor
    """(B, T) 1 on trained model tokens, 0 elsewhere."""
    ref_logprobs: torch.Tensor | None = None
    """(B, T) log-probs under the reference policy; needed when kl_coef > 0."""
    entropies: torch.Tensor | None = None
    """(B, T) per-token entropies of the policy being trained; needed when entropy_coef > 0."""


@dataclass(frozen=True)
class LossOutputs:
    loss: torch.Tensor
    """Scalar to backpropagate: policy_loss + kl_coef * kl - entropy_coef * entropy."""
    policy_loss: torch.Tensor
    kl: torch.Tensor
    """Token-mean KL to the reference (0 without ref_logprobs)."""
    entropy: torch.Tensor
    """Token-mean entropy (0 without entropies)."""
    clip_frac: torch.Tensor
    """Share of valid tokens whose clipped term was the active one (zero gradient under ppo_clip)."""
    dual_clip_frac: torch.Tensor
    """Share of valid tokens capped by the dual clip."""
    ratio_mean: torch.Tensor
    approx_kl_old: torch.Tensor
    """Token-mean of old_logprobs - logprobs: how far the policy has moved since sampling."""
    num_tokens: int
    """Valid tokens in this call."""

    def metrics(self) -> dict[str, float]:
        """Floats in the PRODUCT.md vocabulary, plus a few loss diagnostics."""
        return {
            "loss/policy": float(self.policy_loss),
            "loss/kl": float(self.kl),
            "entropy/token_mean": float(self.entropy),
            "clip/frac": float(self.clip_frac),
            "clip/dual_frac": float(self.dual_clip_frac),
            "loss/ratio_mean": float(self.ratio_mean),
            "loss/approx_kl_old": float(self.approx_kl_old),
        }


class Surrogate(NamedTuple):
    loss: torch.Tensor
    """(B, T) per-token policy loss."""
    clipped: torch.Tensor
    """(B, T) bool: the clipped ratio term was the active one."""
    dual_clipped: torch.Tensor
    """(B, T) bool: the dual-clip cap -c * A was the active one."""


PolicyLoss = Callable[[torch.Tensor, torch.Tensor, LossSettings], Surrogate]
"""(ratio (B, T), advantages (B, T), settings) -> per-token loss and which clip was active."""
KLEstimator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(logprobs (B, T), ref_logprobs (B, T)) -> per-token KL estimate (B, T)."""


def ppo_clip_loss(ratio: torch.Tensor, advantages: torch.Tensor, settings: LossSettings) -> Surrogate:
    """Standard clipped surrogate, negated: max(-A r, -A clip(r)), then dual-clip for A < 0."""
    clipped_ratio = ratio.clamp(1 - settings.clip_low, 1 + settings.clip_high)  # (B, T)
    return _clipped_surrogate(ratio, clipped_ratio, advantages, settings)


def entropy_balanced_loss(ratio: torch.Tensor, advantages: torch.Tensor, settings: LossSettings) -> Surrogate:
    """AEPO: above the upper bound use (1 + eps) * r / sg(r): value 1 + eps, gradient (1 + eps) * dr/r."""
    upper = 1 + settings.clip_high
    soft_upper = upper * ratio / ratio.detach()  # (B, T)
    clipped_ratio = torch.where(ratio > upper, soft_upper, ratio.clamp(min=1 - settings.clip_low))
    return _clipped_surrogate(ratio, clipped_ratio, advantages, settings)


def kl_k1(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """k1 = log pi - log pi_ref: unbiased, high variance, can be negative per token."""
    return logprobs - ref_logprobs


def kl_low_var(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """k3 = exp(ref - logp) - (ref - logp) - 1: unbiased, never negative, lower variance than k1."""
    log_ratio = (ref_logprobs - logprobs).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    return (log_ratio.exp() - log_ratio - 1).clamp(-LOW_VAR_KL_LIMIT, LOW_VAR_KL_LIMIT)


POLICY_LOSSES: dict[str, PolicyLoss] = {
    "ppo_clip": ppo_clip_loss,
    "entropy_balanced": entropy_balanced_loss,
}
KL_ESTIMATORS: dict[str, KLEstimator] = {
    "k1": kl_k1,
    "low_var_kl": kl_low_var,
    "k3": kl_low_var,
}


def compute_loss(
    inputs: LossInputs, settings: LossSettings | None = None, *, num_tokens: float | None = None
) -> LossOutputs:
    """Token-mean loss over `inputs.mask`.

    `num_tokens` overrides the denominator: with gradient accumulation pass the valid-token count of
    the whole mini-batch, so the micro-batch losses add up to the mini-batch token-mean.
    """
    s = settings or LossSettings()
    valid = inputs.mask.bool()  # (B, T)
    count = int(valid.sum())
    denom = float(num_tokens) if num_tokens is not None else float(max(count, 1))

    def token_mean(x: torch.Tensor) -> torch.Tensor:
        # where, not multiply: garbage at masked positions must not reach the sum or the gradient.
        return torch.where(valid, x, 0.0).sum() / denom

    log_ratio = (inputs.logprobs - inputs.old_logprobs).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)  # (B, T)
    ratio = log_ratio.exp()  # (B, T)
    surrogate = POLICY_LOSSES[s.policy_loss](ratio, inputs.advantages, s)
    policy_loss = token_mean(surrogate.loss)
    loss = policy_loss

    zero = policy_loss.new_zeros(())
    kl = zero
    if inputs.ref_logprobs is not None:
        kl = token_mean(KL_ESTIMATORS[s.kl_type](inputs.logprobs, inputs.ref_logprobs))
        loss = loss + s.kl_coef * kl
    elif s.kl_coef:
        raise ValueError("kl_coef is set but LossInputs.ref_logprobs is missing")
    entropy = zero
    if inputs.entropies is not None:
        entropy = token_mean(inputs.entropies)
        loss = loss - s.entropy_coef * entropy
    elif s.entropy_coef:
        raise ValueError("entropy_coef is set but LossInputs.entropies is missing")

    with torch.no_grad():
        return LossOutputs(
            loss=loss,
            policy_loss=policy_loss.detach(),
            kl=kl.detach(),
            entropy=entropy.detach(),
            clip_frac=token_mean(surrogate.clipped.to(ratio.dtype)),
            dual_clip_frac=token_mean(surrogate.dual_clipped.to(ratio.dtype)),
            ratio_mean=token_mean(ratio),
            approx_kl_old=token_mean(-log_ratio),
            num_tokens=count,
        )


def _clipped_surrogate(
    ratio: torch.Tensor, clipped_ratio: torch.Tensor, advantages: torch.Tensor, settings: LossSettings
) -> Surrogate:
    unclipped = -advantages * ratio  # (B, T)
    clipped = -advantages * clipped_ratio  # (B, T)
    # where, not torch.maximum: on ties maximum splits the gradient between both branches.
    use_clipped = clipped > unclipped  # (B, T)
    loss = torch.where(use_clipped, clipped, unclipped)  # (B, T)
    if settings.dual_clip is None:
        return Surrogate(loss, use_clipped, torch.zeros_like(use_clipped))
    # For A < 0 a huge ratio makes -A r unbounded; dual-clip caps the loss at -c A (no gradient).
    cap = -advantages * settings.dual_clip  # (B, T)
    capped = (advantages < 0) & (loss > cap)  # (B, T)
    return Surrogate(torch.where(capped, cap, loss), use_clipped & ~capped, capped)


def _names(registry: Iterable[str]) -> str:
    return ", ".join(sorted(registry))
