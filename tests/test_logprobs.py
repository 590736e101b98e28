"""Chunked log-probs agree with the naive full log_softmax, in values and in gradients."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from arpo_engine.entropy import token_entropy
from arpo_engine.logprobs import logprobs_from_logits, token_logprobs

VOCAB = 1000


@pytest.fixture(scope="module")
def model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two rows of 11 tokens; the second is left-padded by 3, so positions must follow the mask."""
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(0, VOCAB, (2, 11), generator=generator)
    attention_mask = torch.ones(2, 11, dtype=torch.long)
    attention_mask[1, :3] = 0
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return input_ids, attention_mask, position_ids


def naive_logprobs(
    model: LlamaForCausalLM, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, V)
    chosen = logp.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return chosen, token_entropy(logits[:, :-1])


def test_logprobs_from_logits_matches_log_softmax_gather() -> None:
    logits = torch.randn(3, 5, 17, dtype=torch.float64)
    labels = torch.randint(0, 17, (3, 5))
    out = logprobs_from_logits(logits, labels, with_entropy=True)
    expected = torch.log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(out.logprobs, expected.float())
    assert out.entropies is not None
    torch.testing.assert_close(out.entropies, token_entropy(logits).float())


def test_logprobs_from_logits_of_uniform_logits_is_minus_log_vocab_and_entropy_log_vocab() -> None:
    out = logprobs_from_logits(torch.zeros(2, 8), torch.tensor([0, 7]), with_entropy=True)
    torch.testing.assert_close(out.logprobs, torch.full((2,), -math.log(8)))
    assert out.entropies is not None
    torch.testing.assert_close(out.entropies, torch.full((2,), math.log(8)))


def test_logprobs_from_logits_omits_entropy_unless_asked() -> None:
    assert logprobs_from_logits(torch.zeros(2, 8), torch.tensor([0, 1])).entropies is None


@pytest.mark.parametrize("chunk_size", [1, 4, 7, 1024])
def test_chunked_logprobs_and_entropies_match_the_full_log_softmax(
    model: LlamaForCausalLM, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], chunk_size: int
) -> None:
    input_ids, attention_mask, position_ids = batch
    with torch.no_grad():
        expected, expected_entropy = naive_logprobs(model, input_ids, attention_mask, position_ids)
        out = token_logprobs(model, input_ids, attention_mask, chunk_size=chunk_size, with_entropy=True)
    assert out.logprobs.shape == (2, 10)
    torch.testing.assert_close(out.logprobs, expected)
    assert out.entropies is not None
    torch.testing.assert_close(out.entropies, expected_entropy)


class WrappedHead(torch.nn.Linear):
    """A head that is not a plain nn.Linear (as a wrapper would be): the checkpointed path, not the fused one."""


@pytest.mark.parametrize("head", ["fused", "checkpointed"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_chunked_logprobs_give_the_same_parameter_gradients_as_the_full_log_softmax(
    model: LlamaForCausalLM, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], head: str, temperature: float
) -> None:
    input_ids, attention_mask, position_ids = batch
    generator = torch.Generator().manual_seed(2)
    weights, entropy_weights = torch.randn(2, 10, generator=generator), torch.randn(2, 10, generator=generator)
    model = copy.deepcopy(model)
    if head == "checkpointed":
        wrapped = WrappedHead(model.config.hidden_size, VOCAB, bias=False)
        wrapped.weight = model.lm_head.weight
        model.lm_head = wrapped

    model.zero_grad()
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits[:, :-1]
    expected = logprobs_from_logits(logits / temperature, input_ids[:, 1:], with_entropy=True)
    ((expected.logprobs * weights).sum() + (expected.entropies * entropy_weights).sum()).backward()
    expected_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.zero_grad()
    out = token_logprobs(
        model, input_ids, attention_mask, chunk_size=3, temperature=temperature, with_entropy=True
    )
    assert out.entropies is not None
    torch.testing.assert_close(out.entropies[0], expected.entropies[0].detach())
    ((out.logprobs * weights).sum() + (out.entropies * entropy_weights).sum()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    assert grads.keys() == expected_grads.keys()
    assert "lm_head.weight" in grads
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], msg=name)


def test_temperature_divides_the_logits(
    model: LlamaForCausalLM, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
) -> None:
    input_ids, attention_mask, position_ids = batch
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
        expected = logprobs_from_logits(logits[:, :-1] / 0.7, input_ids[:, 1:]).logprobs
        out = token_logprobs(model, input_ids, attention_mask, chunk_size=5, temperature=0.7)
    torch.testing.assert_close(out.logprobs, expected)


def test_selected_positions_match_the_full_computation_and_the_rest_are_zero(
    model: LlamaForCausalLM, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
) -> None:
    input_ids, attention_mask, _ = batch
    select = torch.zeros(2, 10, dtype=torch.bool)
    select[0, 4:9] = True
    select[1, 6:] = True
    weights = torch.randn(2, 10, generator=torch.Generator().manual_seed(3)) * select

    model.zero_grad()
    full = token_logprobs(model, input_ids, attention_mask, chunk_size=3, with_entropy=True)
    ((full.logprobs * weights).sum()).backward()
    expected_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.zero_grad()
    part = token_logprobs(model, input_ids, attention_mask, chunk_size=3, with_entropy=True, select=select)
    ((part.logprobs * weights).sum()).backward()

    assert part.entropies is not None and full.entropies is not None
    torch.testing.assert_close(part.logprobs[select], full.logprobs[select])
    torch.testing.assert_close(part.entropies[select], full.entropies[select])
    assert torch.all(part.logprobs[~select] == 0) and torch.all(part.entropies[~select] == 0)
    for name, param in model.named_parameters():
        if name in expected_grads:
            assert param.grad is not None, name
            torch.testing.assert_close(param.grad, expected_grads[name], msg=name)


def test_select_of_the_wrong_shape_is_refused(
    model: LlamaForCausalLM, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
) -> None:
    input_ids, attention_mask, _ = batch
    with pytest.raises(ValueError, match="select has shape"):
        token_logprobs(model, input_ids, attention_mask, select=torch.ones(2, 11, dtype=torch.bool))


def test_lm_head_chunks_hold_a_bounded_number_of_logits_in_forward_and_backward(model, batch, monkeypatch):
    # The default chunk is sized in logits (memory.LOGIT_CHUNK_ELEMENTS), whatever the vocabulary:
    # no tensor with a vocabulary axis larger than one chunk may exist, in forward or in backward.
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    from arpo_engine import memory

    monkeypatch.setattr(memory, "LOGIT_CHUNK_ELEMENTS", 4 * VOCAB)
    largest, hidden = [0], model.config.hidden_size

    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            for t in tree_flatten(out)[0]:
                # positions x vocabulary; the head's weight (and its transpose, H x V) is not a chunk
                if isinstance(t, torch.Tensor) and t.dim() and t.shape[-1] == VOCAB and t.shape[0] != hidden:
                    largest[0] = max(largest[0], t.numel())
            return out

    input_ids, attention_mask, _ = batch
    trained = copy.deepcopy(model)
    with Watch():
        out = token_logprobs(trained, input_ids, attention_mask, with_entropy=True)
        (out.logprobs.sum() + out.entropies.sum()).backward()
    assert largest[0] == 4 * VOCAB  # 20 positions, in chunks of 4: one chunk's logits at a time
    reference = token_logprobs(model, input_ids, attention_mask, chunk_size=1024, with_entropy=True)
    torch.testing.assert_close(out.logprobs, reference.logprobs)

