"""Fork slots near the budget: a claim is granted only when no earlier decision can change its share."""

from arpo_engine.rollout.budget import grant, possible_forks

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


def test_possible_forks_bounds_each_live_path_by_its_remaining_tool_calls():
    # with 3 calls allowed: a path still to decide at t=1 can add 2**3 - 1 = 7, at t=3 only 1, past 3 none
    assert possible_forks(beam_width=2, max_tool_calls=3, live=[1], waiting=[]) == 7
    assert possible_forks(beam_width=2, max_tool_calls=3, live=[3, 4], waiting=[]) == 1
    # a claim at t=2 adds its child, which can fork once more at t=3
    assert possible_forks(beam_width=2, max_tool_calls=3, live=[], waiting=[2]) == 2
    assert possible_forks(beam_width=3, max_tool_calls=1, live=[1, 1], waiting=[1]) == 6


def test_with_the_bound_free_no_claim_ever_waits():
    # the bound covers every live path and every claim, the one asking included
    live, claims = [(1, A), (2, B)], [(1, C), (3, (1, 0)), (2, (1, 1))]
    bound = possible_forks(beam_width=2, max_tool_calls=3, live=[t for t, _ in live], waiting=[t for t, _ in claims])
    for claim in claims:
        others = [c for c in claims if c != claim]
        assert ask(claim, free=bound, live=live, waiting=others) == 1
