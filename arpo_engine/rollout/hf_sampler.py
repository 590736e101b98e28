"""A Sampler on plain transformers: batched decoding with a KV cache and exact token entropies.

ARPO_SPEC.md §2: per-token entropy is exact where the logits are at hand. This sampler has them,
so `entropy_estimator` is `exact`: the entropy of the model's own distribution (temperature 1,
before top-p) at every generated position, the same quantity the learner can recompute. It is
slower than vLLM and has no prefix cache, but needs nothing beyond torch and transformers.

Sampling draws every request's tokens from its own seeded `torch.Generator`, so a request's sample
does not depend on its batch neighbours (up to float rounding of the padded batch). There is no
continuous batching: the streaming interface (`submit`/`step`) decodes all queued requests as one batch.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from arpo_engine.entropy import token_entropy
from arpo_engine.rollout.sampler import (
    BatchQueue,
    Finished,
    GenRequest,
    GenResult,
    check_sampling,
    response_budget,
)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class _Row:
    """One request being decoded."""

    request: GenRequest
    budget: int
    generator: torch.Generator
    window: int
    """Generated tokens to decode when looking for a stop string (enough to hold the longest one)."""
    tokens: list[int] = field(default_factory=list)
    entropies: list[float] = field(default_factory=list)
    finish: Literal["eos", "stop", "length"] | None = None
    stop_str: str | None = None


class TransformersSampler:
    """Sampler protocol on a Hugging Face causal LM (exact entropies, per-request seeds)."""

    entropy_estimator = "exact"
    continuous_batching = False
    """Each step decodes the queued requests to the end as one batch (no joining mid-batch)."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        dtype: Literal["float32", "bfloat16", "float16"] | torch.dtype = "float32",
        device: str | torch.device = "cpu",
        seed: int = 0,
        max_model_len: int | None = None,
        max_batch_size: int = 32,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        torch_dtype = _DTYPES[dtype] if isinstance(dtype, str) else dtype
        self.device = torch.device(device)
        self.tokenizer: Any = AutoTokenizer.from_pretrained(model_path)
        model: Any = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype)
        self.model: Any = model.to(self.device).eval()
        config = self.model.config
        self.vocab_size = int(config.vocab_size)
        self.max_model_len = int(max_model_len or config.max_position_embeddings)
        self.max_batch_size = max_batch_size
        try:
            gen_eos = GenerationConfig.from_pretrained(model_path).eos_token_id
        except OSError:  # a folder without generation_config.json
            gen_eos = None
        self.eos_token_ids = frozenset(_as_ids(gen_eos) | _as_ids(config.eos_token_id))
        self.eos_token_ids |= _as_ids(self.tokenizer.eos_token_id)
        if not self.eos_token_ids:
            raise ValueError(f"{model_path}: neither the config nor the tokenizer names an EOS token")
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = int(pad) if pad is not None else min(self.eos_token_ids)
        self._seeds = random.Random(seed)
        self._queue = BatchQueue()
        self.on_token: Callable[[GenRequest, int], None] | None = None
        """Called with each token as it is decoded (the playground streams them); raising stops the decode."""

    def generate(
        self, requests: Sequence[GenRequest], *, temperature: float, top_p: float
    ) -> list[GenResult]:
        check_sampling(temperature, top_p)
        rows = [self._new_row(r) for r in requests]
        # Similar lengths share a batch, so left padding wastes little compute.
        order = sorted(range(len(rows)), key=lambda i: len(rows[i].request.prompt_ids))
        for start in range(0, len(order), self.max_batch_size):
            self._decode([rows[i] for i in order[start : start + self.max_batch_size]], temperature, top_p)
        return [self._result(row) for row in rows]

    def submit(self, key: str, request: GenRequest, *, temperature: float, top_p: float) -> None:
        self._queue.add(key, request, temperature, top_p)

    def step(self) -> list[Finished]:
        return self._queue.run(self.generate)

    def pending(self) -> int:
        return len(self._queue)

    def cancel(self) -> None:
        self._queue.clear()

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy new parameter values in place (the learner's weight sync)."""
        # state_dict, not named_parameters: it also names tied weights (lm_head.weight), sharing storage.
        state = self.model.state_dict()
        with torch.no_grad():
            for name, tensor in named_tensors:
                state[name].copy_(tensor.to(state[name].device, state[name].dtype))

    def close(self) -> None:
        self.model = None

    def _new_row(self, request: GenRequest) -> _Row:
        budget = response_budget(request, self.max_model_len)
        seed = request.seed if request.seed is not None else self._seeds.getrandbits(63)
        # A token adds at least one byte of text, so a stop string spans at most its byte length in tokens.
        window = max((len(s.encode()) for s in request.stop), default=0) + 2
        return _Row(
            request=request,
            budget=budget,
            generator=torch.Generator(self.device).manual_seed(seed),
            window=window,
        )

    @torch.inference_mode()
    def _decode(self, rows: list[_Row], temperature: float, top_p: float) -> None:
        from transformers import DynamicCache

        prompts = [r.request.prompt_ids for r in rows]
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, p in enumerate(prompts):  # left padding: every row's next token lands in the last column
            input_ids[i, width - len(p) :] = torch.tensor(p)
            mask[i, width - len(p) :] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        logits = self._forward(input_ids, mask, positions, cache)
        next_pos = positions[:, -1] + 1  # (b,)
        active = rows
        while True:
            entropies = token_entropy(logits).tolist()  # (b,) exact, from the raw logits
            tokens = self._pick(logits, [r.generator for r in active], temperature, top_p)  # (b,)
            keep = [j for j, r in enumerate(active) if not self._advance(r, int(tokens[j]), entropies[j])]
            if not keep:
                return
            if len(keep) < len(active):  # finished rows leave the batch and its cache
                idx = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(idx)
                mask, tokens, next_pos = mask[idx], tokens[idx], next_pos[idx]
                active = [active[j] for j in keep]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
            logits = self._forward(tokens[:, None], mask, next_pos[:, None], cache)
            next_pos = next_pos + 1

    def _forward(
        self, input_ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any
    ) -> torch.Tensor:
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,  # the (b, T, V) logits of a long prefill would not fit in memory
        )
        return out.logits[:, -1, :].float()  # (b, V)

    def _pick(
        self, logits: torch.Tensor, generators: list[torch.Generator], temperature: float, top_p: float
    ) -> torch.Tensor:
        if temperature == 0:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits / temperature, dim=-1)  # (b, V)
        if top_p < 1:
            probs = _top_p_filter(probs, top_p)
        # Inverse-CDF sampling: one uniform draw per row from that row's own generator, then a batched
        # search (per-row torch.multinomial over |V| was a tenth of the decode time).
        cdf = probs.cumsum(dim=-1)  # (b, V)
        u = torch.stack([torch.rand((), generator=g, device=self.device) for g in generators])  # (b,)
        picks = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).squeeze(-1)  # (b,)
        return picks.clamp(max=probs.shape[-1] - 1)

    def _advance(self, row: _Row, token: int, entropy: float) -> bool:
        """Append a token; return True when the row is finished."""
        if self.on_token is not None:
            self.on_token(row.request, token)
        row.tokens.append(token)
        row.entropies.append(entropy)
        if token in self.eos_token_ids:
            row.finish = "eos"
        elif row.request.stop and (hit := self._stop_hit(row)) is not None:
            row.finish, row.stop_str = "stop", hit
        elif len(row.tokens) >= row.budget:
            row.finish = "length"
        return row.finish is not None

    def _stop_hit(self, row: _Row) -> str | None:
        # Checked after every token, so a stop string in the tail was completed by the newest token.
        tail = self.tokenizer.decode(row.tokens[-row.window :], skip_special_tokens=True)
        return next((s for s in row.request.stop if s in tail), None)

    def _result(self, row: _Row) -> GenResult:
        assert row.finish is not None
        return GenResult(
            token_ids=row.tokens,
            text=self.tokenizer.decode(row.tokens, skip_special_tokens=True),
            entropies=row.entropies,
            finish_reason=row.finish,
            stop_str=row.stop_str,
        )


def _top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero all but the smallest set of most likely tokens whose mass reaches top_p: (b, V) -> (b, V)."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs)


def _as_ids(value: int | Iterable[int] | None) -> set[int]:
    if value is None:
        return set()
    if isinstance(value, int):
        return {value}
    return {int(v) for v in value}
