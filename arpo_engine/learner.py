"""The learner: log-probs, the clipped policy loss, backward and optimizer steps (ARPO_SPEC.md §5).

No Ray in here. A batch is a list of `TrainSequence` (prompt + response token ids, the response mask
and per-token advantages). `update` splits it into mini-batches of prompts (one optimizer step each,
paper: 8 per training step) and each mini-batch into micro-batches bounded by a token budget whose
gradients accumulate; the loss is the token-mean over the mini-batch's model tokens.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from arpo_engine.advantages import entropy_aware_advantages, entropy_moments
from arpo_engine.config import AlgorithmConfig, OptimConfig
from arpo_engine.device import (
    autocast,
    checkpointing,
    enable_activation_checkpointing,
    learner_precision,
    release_freed_memory,
    resolve_device,
)
from arpo_engine.logprobs import token_logprobs
from arpo_engine.lora import apply_lora
from arpo_engine.losses import LossInputs, LossSettings, compute_loss
from arpo_engine.tree_pack import (
    TreePack,
    eq6_mask,
    flex_unsupported,
    pack,
    tree_micro_batches,
    tree_token_logprobs,
    varlen_unsupported,
)


@dataclass
class TrainSequence:
    prompt_index: int
    prompt_ids: list[int]
    response_ids: list[int]
    mask: list[int]
    """1 on model tokens of the response (trained), 0 on tool-result tokens."""
    advantages: list[float]
    """One per response token."""
    old_logprobs: list[float] | None = None
    """Per response token under the sampling policy, filled by `Learner.score`."""
    ref_logprobs: list[float] | None = None

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.response_ids)


@dataclass
class Padded:
    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    mask: torch.Tensor  # (B, T-1) aligned with the log-probs of input_ids[:, 1:]
    advantages: torch.Tensor  # (B, T-1)
    spans: list[tuple[int, int]]
    """Per row, the log-prob positions [start, end) of its response tokens."""
    tree: TreePack | None = None
    """The rows packed as a token tree (optim.tree_pack): log-probs then come from one packed pass."""

    def to(self, device: torch.device) -> Padded:
        tree = self.tree.to(device) if self.tree is not None else None
        return Padded(
            self.input_ids.to(device), self.attention_mask.to(device), self.mask.to(device),
            self.advantages.to(device), self.spans, tree,
        )  # fmt: skip


def loss_settings(algorithm: AlgorithmConfig) -> LossSettings:
    return LossSettings(
        policy_loss="entropy_balanced" if algorithm.entropy_balanced_clip else "ppo_clip",
        clip_low=algorithm.clip_low,
        clip_high=algorithm.clip_high,
        dual_clip=algorithm.dual_clip if algorithm.dual_clip > 1 else None,
        kl_coef=algorithm.kl_coef,
        kl_type=algorithm.kl_type,
        entropy_coef=algorithm.entropy_coef,
    )


def pad_sequences(batch: Sequence[TrainSequence], pad_id: int) -> Padded:
    width = max(s.length for s in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width - 1))
    advantages = torch.zeros((len(batch), width - 1))
    spans = []
    for row, s in enumerate(batch):
        tokens = s.prompt_ids + s.response_ids
        ids[row, : len(tokens)] = torch.tensor(tokens)
        attention[row, : len(tokens)] = 1
        # the log-prob of response token j sits at position len(prompt) - 1 + j
        start, end = len(s.prompt_ids) - 1, len(tokens) - 1
        mask[row, start:end] = torch.tensor(s.mask, dtype=torch.float)
        advantages[row, start:end] = torch.tensor(s.advantages)
        spans.append((start, end))
    return Padded(ids, attention, mask, advantages, spans)


def resolve_tree_attention(setting: str, model: Any, device: torch.device, precision: str) -> str:
    """optim.tree_attention for this learner: `auto` is `flex` where FlexAttention can run, else `segments`;
    an explicit kernel that cannot run here is refused with the reason."""
    why_not = {
        "flex": flex_unsupported(model, device),
        "varlen": varlen_unsupported(model, device, precision),
        "segments": "",
    }
    if setting == "auto":
        return "segments" if why_not["flex"] else "flex"
    if why_not[setting]:
        raise ValueError(f"optim.tree_attention={setting} {why_not[setting]}")
    return setting


def micro_batches(batch: Sequence[TrainSequence], max_tokens: int) -> Iterator[list[TrainSequence]]:
    """Consecutive groups whose padded size (rows x longest) stays within max_tokens (at least one row)."""
    current: list[TrainSequence] = []
    longest = 0
    for s in batch:
        if current and max(longest, s.length) * (len(current) + 1) > max_tokens:
            yield current
            current, longest = [], 0
        current.append(s)
        longest = max(longest, s.length)
    if current:
        yield current


def freeze_lower_layers(model: Any, trainable_layers: int) -> None:
    """Leave only the top `trainable_layers` decoder blocks and the final norm trainable (0 = all)."""
    if trainable_layers <= 0:
        return
    body = model.base_model
    layers = getattr(body, "layers", None)
    if layers is None:
        raise ValueError("optim.trainable_layers needs a decoder with a `layers` list (Llama, Qwen, Mistral …)")
    if trainable_layers >= len(layers):
        return
    for p in model.parameters():
        p.requires_grad_(False)
    for layer in layers[-trainable_layers:]:
        for p in layer.parameters():
            p.requires_grad_(True)
    norm = getattr(body, "norm", None)
    if norm is not None:
        for p in norm.parameters():
            p.requires_grad_(True)


class Learner:
    def __init__(
        self,
        model: Any,
        *,
        optim: OptimConfig,
        algorithm: AlgorithmConfig,
        pad_token_id: int,
        ref_model: Any | None = None,
        temperature: float = 1.0,
        seed: int = 0,
    ) -> None:
        """`seed` draws the LoRA adapters' random start (optim.lora_rank > 0); nothing else uses it.

        `ref_model` is the frozen reference of the KL penalty (the starting policy). A LoRA learner
        needs none: its reference is the same model with the adapters off (`lora.adapters_disabled`).
        """
        self.device = resolve_device(optim.device)
        self.model = model.to(self.device)
        self.ref_model = ref_model
        if ref_model is not None:
            ref_model.to(self.device).eval()
            ref_model.requires_grad_(False)
        if optim.activation_checkpointing:
            enable_activation_checkpointing(model)
        self.optim_cfg = optim
        self.precision, self.precision_note = learner_precision(optim.precision, self.device)
        """What the learner computes in (`fp32` or `bf16`) and, when it differs from optim.precision, why."""
        self.tree_attention = resolve_tree_attention(optim.tree_attention, model, self.device, self.precision)
        """How a tree-packed pass attends here: `segments`, `flex` or `varlen` (optim.tree_attention resolved)."""
        self.algorithm = algorithm
        self.settings = loss_settings(algorithm)
        self.pad_token_id = pad_token_id
        self.temperature = temperature
        if optim.lora_rank > 0:
            apply_lora(model, optim, seed=seed)  # in place; only the adapters train (arpo_engine/lora.py)
        else:
            freeze_lower_layers(model, optim.trainable_layers)
        self.ref_is_base = ref_model is None and optim.lora_rank > 0 and algorithm.kl_coef > 0
        if algorithm.kl_coef > 0 and ref_model is None and not self.ref_is_base:
            raise ValueError("algorithm.kl_coef > 0 needs a reference model: pass the frozen starting policy")
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)

    @torch.no_grad()
    def score(self, batch: Sequence[TrainSequence]) -> None:
        """Fill old (and reference) log-probs: recomputed here, not taken from the sampler (paper §5)."""
        self.model.eval()
        for chunk in self._micro_batches(batch):
            padded = self._pad(chunk)
            old = self._logprobs(self.model, padded).logprobs.cpu()  # one copy each, not one per row
            ref = self._ref_logprobs(padded).cpu() if self.has_reference else None
            for row, (s, (start, end)) in enumerate(zip(chunk, padded.spans, strict=True)):
                s.old_logprobs = old[row, start:end].tolist()
                if ref is not None:
                    s.ref_logprobs = ref[row, start:end].tolist()

    @property
    def has_reference(self) -> bool:
        return self.ref_model is not None or self.ref_is_base

    def _ref_logprobs(self, padded: Padded) -> torch.Tensor:
        if self.ref_model is not None:
            return self._logprobs(self.ref_model, padded).logprobs
        from arpo_engine.lora import adapters_disabled

        with adapters_disabled(self.model):
            return self._logprobs(self.model, padded).logprobs

    def _micro_batches(self, batch: Sequence[TrainSequence]) -> list[list[TrainSequence]]:
        if self.optim_cfg.tree_pack:  # the budget counts distinct tokens, the ones a packed pass computes
            return list(tree_micro_batches(batch, self.optim_cfg.micro_batch_tokens))
        return list(micro_batches(batch, self.optim_cfg.micro_batch_tokens))

    def _pad(self, chunk: Sequence[TrainSequence]) -> Padded:
        """The chunk padded (and tree-packed) on the learner's device; `hard` + tree: Eq. 6's token set."""
        padded = pad_sequences(chunk, self.pad_token_id)
        if self.optim_cfg.tree_pack:
            padded.tree = pack(chunk, padded.input_ids.shape[1])
            if self.algorithm.advantage == "hard":
                padded.mask, padded.advantages = eq6_mask(padded.tree, padded.mask, padded.advantages)
        padded = padded.to(self.device)
        if padded.tree is not None and self.tree_attention == "flex":
            padded.tree = padded.tree.with_flex()
        elif padded.tree is not None and self.tree_attention == "varlen":
            padded.tree = padded.tree.with_varlen()
        return padded

    def _logprobs(self, model: Any, padded: Padded, *, with_entropy: bool = False) -> Any:
        with autocast(self.device, self.precision), checkpointing(model):
            if padded.tree is not None:
                return tree_token_logprobs(
                    model, padded.tree, padded.mask > 0, temperature=self.temperature, with_entropy=with_entropy
                )
            return token_logprobs(
                model,
                padded.input_ids,
                padded.attention_mask,
                temperature=self.temperature,
                with_entropy=with_entropy,
                select=padded.mask > 0,  # only trained tokens need the LM head
            )

    def update(self, batch: Sequence[TrainSequence]) -> dict[str, float]:
        """PPO epochs over the batch in mini-batches of prompts; returns learner metrics.

        Old log-probs are the learner's own (paper §5), and the first optimizer step of a batch runs on
        exactly the weights that would score it, so that mini-batch takes them from its own forward
        pass (detached) instead of a separate scoring pass; only the later mini-batches are scored up
        front. The model stays in eval mode (no dropout), which keeps the two identical.
        """
        started = time.perf_counter()
        self.model.eval()
        per_prompt: dict[int, list[TrainSequence]] = {}
        for s in batch:
            per_prompt.setdefault(s.prompt_index, []).append(s)
        prompts = list(per_prompt)
        size = max(1, self.optim_cfg.mini_batch_prompts)
        minis = [[s for p in prompts[i : i + size] for s in per_prompt[p]] for i in range(0, len(prompts), size)]
        first = minis[0] if minis else []
        later = [s for mini in minis[1:] for s in mini]
        needs_score = [s for s in later if s.old_logprobs is None]
        if self.has_reference:
            needs_score += [s for s in first if s.ref_logprobs is None]
        if needs_score:
            self.score(needs_score)
        logs: list[dict[str, float]] = []
        tokens = 0
        for _ in range(self.optim_cfg.ppo_epochs):
            for mini in minis:
                logs.append(self._step(mini))
                tokens += sum(s.length for s in mini)
        # the next step's backward makes them anew: not held through the rollout (113 MB in the demo run)
        self.optimizer.zero_grad(set_to_none=True)
        if self.device.type == "cpu":
            release_freed_memory()  # activations and logits are gone: don't carry their pages into the rollout
        elapsed = time.perf_counter() - started
        metrics = {k: sum(d[k] for d in logs) / len(logs) for k in logs[0]} if logs else {}
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        metrics["learner/updates"] = float(len(logs))
        metrics["time/update_s"] = elapsed
        metrics["throughput/train_tok_s"] = tokens / elapsed if elapsed > 0 else 0.0
        return metrics

    def _step(self, mini: Sequence[TrainSequence]) -> dict[str, float]:
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        chunks = self._micro_batches(mini)
        pads = [self._pad(chunk) for chunk in chunks]
        total_tokens = int(sum(float(p.mask.sum()) for p in pads))  # Eq. 6 (hard + tree) counts shared tokens once
        need_entropy = self.algorithm.entropy_aware_advantage
        # AEPO's z is standardized over the mini-batch; split in micro-batches, that needs a first pass
        moments = self._entropy_moments(chunks) if need_entropy and len(chunks) > 1 else None
        for chunk, padded in zip(chunks, pads, strict=True):
            # entropies always: `entropy/token_mean` is logged every step (verl's actor/entropy)
            out = self._logprobs(self.model, padded, with_entropy=True)
            assert out.entropies is not None
            self._fill_old(chunk, padded, out.logprobs)
            advantages = padded.advantages
            if need_entropy:
                advantages = entropy_aware_advantages(advantages, out.entropies, padded.mask, moments=moments)
            inputs = LossInputs(
                logprobs=out.logprobs,
                old_logprobs=self._aligned(chunk, padded, "old_logprobs"),
                advantages=advantages,
                mask=padded.mask,
                ref_logprobs=self._aligned(chunk, padded, "ref_logprobs") if self.has_reference else None,
                # without a bonus the entropy is only measured: detached, backward skips it
                entropies=out.entropies if self.settings.entropy_coef else out.entropies.detach(),
            )
            result = compute_loss(inputs, self.settings, num_tokens=max(total_tokens, 1))
            result.loss.backward()
            # every term is already divided by the mini-batch token count, so micro-batches add up
            for k, v in result.metrics().items():
                sums[k] = sums.get(k, 0.0) + v
        params = [p for p in self.model.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, self.optim_cfg.grad_clip)
        if math.isfinite(float(norm)):
            self.optimizer.step()
        sums["grad/norm"] = float(norm)
        return sums

    @torch.no_grad()
    def _entropy_moments(self, chunks: Sequence[Sequence[TrainSequence]]) -> tuple[float, float]:
        """Mean and std of the current policy's entropy over the trained tokens of all chunks."""
        entropies, masks = [], []
        for chunk in chunks:
            padded = self._pad(chunk)
            out = self._logprobs(self.model, padded, with_entropy=True)
            entropies.append(out.entropies[padded.mask > 0])
            masks.append(torch.ones_like(entropies[-1]))
        return entropy_moments(torch.cat(entropies), torch.cat(masks))

    @staticmethod
    def _fill_old(chunk: Sequence[TrainSequence], padded: Padded, logprobs: torch.Tensor) -> None:
        """Sequences not yet scored take the current weights' log-probs as the old policy's (on-policy)."""
        if all(s.old_logprobs is not None for s in chunk):
            return
        values = logprobs.detach().cpu()  # one copy from the device, not one per row
        for row, (s, (start, end)) in enumerate(zip(chunk, padded.spans, strict=True)):
            if s.old_logprobs is None:
                s.old_logprobs = values[row, start:end].tolist()

    @staticmethod
    def _aligned(chunk: Sequence[TrainSequence], padded: Padded, field: str) -> torch.Tensor:
        out = torch.zeros(padded.mask.shape, dtype=padded.mask.dtype)  # filled here, one copy to the device
        for row, (s, (start, end)) in enumerate(zip(chunk, padded.spans, strict=True)):
            values = getattr(s, field)
            if values is not None:
                out[row, start:end] = torch.tensor(values)
        return out.to(padded.mask.device)
