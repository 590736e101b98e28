import math

import pytest
import torch

from arpo_engine.entropy import token_entropy, topk_entropy, window_entropy


def test_uniform_distribution_has_entropy_log_v():
    logits = torch.zeros(3, 50)
    assert torch.allclose(token_entropy(logits), torch.full((3,), math.log(50)))


def test_one_hot_distribution_has_zero_entropy():
    logits = torch.full((1, 10), -1e9)
    logits[0, 3] = 0.0
    assert token_entropy(logits).item() == pytest.approx(0.0, abs=1e-6)


def test_topk_estimate_is_bounded_by_exact_entropy():
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        logits = torch.randn(200, generator=gen) * 3
        exact = token_entropy(logits).item()
        logp = torch.log_softmax(logits, dim=-1)
        for k in (1, 10, 50, 200):
            estimate = topk_entropy(torch.topk(logp, k).values.tolist())
            assert estimate <= exact + 1e-5
        assert topk_entropy(logp.tolist()) == pytest.approx(exact, rel=1e-4)


def test_topk_estimate_ignores_minus_infinity():
    assert topk_entropy([0.0, -math.inf]) == 0.0


def test_window_entropy_sums_then_normalises_by_log_vocab():
    assert window_entropy([1.0, 2.0, 3.0], vocab_size=100) == pytest.approx(6.0 / math.log(100))
    assert window_entropy([1.0, 2.0, 3.0], vocab_size=100, reduce="mean") == pytest.approx(2.0 / math.log(100))
    assert window_entropy([], vocab_size=100) == 0.0
