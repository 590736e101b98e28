"""Fork slots near the budget: a claim is granted only when no earlier decision can change its share."""

from arpo_engine.rollout.budget import grant

A, B, C = (0, 0), (0, 1), (0, 2)


def ask(claim, *, free, live=(), waiting=(), beam_width=2):
    return grant(claim, free=free, beam_width=beam_width, live=live, waiting=waiting)


def test_plenty_of_slots_grants_the_full_beam_at_once():
    assert ask((1, B), free=5, live=[(1, A)]) == 1
    assert ask((1, B), free=5, live=[(1, A)], beam_width=3) == 2


def test_a_claim_waits_while_an_earlier_decision_could_take_the_last_slot():
    assert ask((1, B), free=1, live=[(1, A)]) is None


def test_decisions_later_in_the_order_never_hold_a_claim_up():
    assert ask((1, B), free=1, live=[(1, C), (2, A)]) == 1


def test_with_no_earlier_decision_left_a_claim_takes_what_remains():
    assert ask((1, B), free=1, beam_width=4) == 1


def test_a_full_group_answers_zero_without_waiting():
    assert ask((1, B), free=0, live=[(1, A)]) == 0


def test_earlier_claims_and_their_future_forks_are_counted():
    # A's claim at t=1 adds one child, which can fork again at t=2: up to 2 paths before B's claim at t=2
    assert ask((2, B), free=2, waiting=[(1, A)]) is None
    assert ask((2, B), free=3, waiting=[(1, A)]) == 1


def test_an_earlier_path_is_bounded_by_everything_its_subtree_could_fork():
    # A decides at t=1, 2, 3 and its forks fork too: at most 2**3 - 1 = 7 new paths
    assert ask((3, B), free=7, live=[(1, A)]) is None
    assert ask((3, B), free=8, live=[(1, A)]) == 1
