import dataclasses

import pytest

from arpo_engine.branching import decide, dynamic_initial_samples, fork_count
from arpo_engine.config import BranchingConfig

STOCHASTIC = BranchingConfig(rule="stochastic", alpha=0.5, beta=0.2)
THRESHOLD = BranchingConfig(rule="threshold", alpha=0.5, beta=0.2, tau=0.5)


@pytest.mark.parametrize(("delta", "forks"), [(0.3, True), (0.0, False), (-0.3, False)])
def test_threshold_rule_forks_only_when_entropy_rises(delta, forks):
    decision = decide(delta, THRESHOLD, consecutive=0, draw=0.0)
    assert decision.forked is forks
    assert decision.score == pytest.approx(0.5 + 0.2 * delta)
    assert decision.draw is None


def test_stochastic_rule_forks_when_draw_is_below_clipped_probability():
    # p = 0.5 + 0.2 * 1.0 = 0.7
    assert decide(1.0, STOCHASTIC, consecutive=0, draw=0.69).forked
    assert not decide(1.0, STOCHASTIC, consecutive=0, draw=0.71).forked
    # falling entropy: p = 0.5 - 0.2 = 0.3
    assert decide(-1.0, STOCHASTIC, consecutive=0, draw=0.29).forked
    assert not decide(-1.0, STOCHASTIC, consecutive=0, draw=0.31).forked
    # equal entropy: p = alpha
    assert decide(0.0, STOCHASTIC, consecutive=0, draw=0.5).score == pytest.approx(0.5)


def test_stochastic_probability_is_clipped_to_unit_interval():
    assert decide(10.0, STOCHASTIC, consecutive=0, draw=0.999).score == 1.0
    assert decide(-10.0, STOCHASTIC, consecutive=0, draw=0.0).score == 0.0
    assert not decide(-10.0, STOCHASTIC, consecutive=0, draw=0.0).forked


def test_consecutive_branch_penalty_scales_the_probability():
    cfg = dataclasses.replace(STOCHASTIC, consecutive_penalty=0.05)
    assert decide(1.0, cfg, consecutive=2, draw=0.0).score == pytest.approx(0.7 * 0.9)
    assert decide(1.0, cfg, consecutive=0, draw=0.0).score == pytest.approx(0.7)


def test_fork_count_never_exceeds_the_budget():
    assert fork_count(paths_now=3, budget=8, beam_width=2) == 1
    assert fork_count(paths_now=3, budget=8, beam_width=4) == 3
    assert fork_count(paths_now=7, budget=8, beam_width=4) == 1
    assert fork_count(paths_now=8, budget=8, beam_width=4) == 0


def test_dynamic_budget_gives_more_initial_samples_when_root_entropy_dominates():
    assert dynamic_initial_samples(16, h_root=0.0, h_tool_mean=0.0) == 9  # floor(16 * 0.5) + 1
    assert dynamic_initial_samples(16, h_root=10.0, h_tool_mean=0.0) == 16
    assert dynamic_initial_samples(16, h_root=0.0, h_tool_mean=10.0) == 1
