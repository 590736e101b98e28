"""The loop without rounds: a path goes on as soon as its tool returns, and the trees it builds do not
depend on the order in which segments and tool calls finish."""

import dataclasses
import random
import time
from collections.abc import Mapping
from typing import Any

import pytest

from arpo_engine.config import ToolConfig
from arpo_engine.rollout.agent import RolloutBatch, RolloutDeps, run_rollouts
from arpo_engine.rollout.formats import get_format
from arpo_engine.rollout.scripted import Reply, ScriptContext, ScriptedSampler
from arpo_engine.tools.base import ToolResult
from tests.rollout.test_agent import VOCAB, Sample, UpperTool, config, results_so_far

# (schedule, schedule_seed): the first is the reference, the others finish requests in other orders
SCHEDULES = [("batch", 0), ("tokens", 0), ("lifo", 0), ("random", 1), ("random", 2), ("random", 3)]


class JitteryUpperTool(UpperTool):
    """Upper-cases after a delay that varies by input, so calls return out of submission order."""

    def run(self, arguments: Mapping[str, Any]) -> ToolResult:
        time.sleep(random.Random(str(arguments["text"])).uniform(0.0, 0.004))
        return super().run(arguments)


def seeded_script(ctx: ScriptContext) -> Reply:
    """A "model" whose every choice comes from its request's seed, as a real sampler's would."""
    r = random.Random(ctx.request.seed)
    filler = "x" * r.randint(0, 40)
    entropies = [r.uniform(0.1, 4.0) for _ in range(5)]
    if results_so_far(ctx) < 3 and r.random() < 0.85:
        return Reply(f"<think>{filler}</think><upper>a{r.randint(0, 99)}</upper>", entropies)
    return Reply(f"<answer>\\boxed{{{len(filler)}}}</answer>", entropies)


def rollout(cfg, schedule: str, schedule_seed: int, *, prompts: int = 3, seed: int = 11):
    sampler = ScriptedSampler(seeded_script, VOCAB, schedule=schedule, schedule_seed=schedule_seed)  # type: ignore[arg-type]
    deps = RolloutDeps(sampler, {"upper": JitteryUpperTool()}, get_format("tags"), random.Random(seed))
    batch = run_rollouts([Sample(f"question {i}") for i in range(prompts)], cfg, deps)
    return batch, sampler


def comparable(batch: RolloutBatch) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Everything except what scheduling may change: wall-clock times, sampler steps, and the chain of
    segments (`rollout/rounds`), which supplements that start early shorten by as much as the order allows."""
    groups = [g.to_dict() for g in batch.groups]
    for g in groups:
        for p in g["paths"]:
            for c in p["tool_calls"]:
                c.pop("latency_ms")
    skip = ("time/", "throughput/", "tools/latency", "rollout/sampler_steps", "rollout/rounds", "rollout/ahead")
    metrics = {k: v for k, v in batch.metrics.items() if not k.startswith(skip)}
    return groups, metrics


BRANCHING_CASES = {
    "stochastic, Z=3, contended budget": {"rule": "stochastic", "beam_width": 3},
    "threshold": {"rule": "threshold", "tau": 0.55},
    "AEPO dynamic budget and penalty": {"rule": "stochastic", "dynamic_budget": True, "consecutive_penalty": 0.3},
}


@pytest.mark.parametrize("branching", BRANCHING_CASES.values(), ids=BRANCHING_CASES.keys())
def test_same_seed_gives_the_same_trees_whatever_order_segments_and_tools_finish_in(branching):
    cfg = config(
        rollout={"group_size": 6, "initial_samples": 2, "max_tool_calls": 3, "tool_concurrency": 4},
        branching=branching,
    )
    reference, ref_sampler = rollout(cfg, *SCHEDULES[0])
    ref_finishes = [key for kind, key, _ in ref_sampler.events if kind == "finish"]
    for schedule, schedule_seed in SCHEDULES[1:]:
        batch, sampler = rollout(cfg, schedule, schedule_seed)
        assert comparable(batch) == comparable(reference), (schedule, schedule_seed)
        assert [key for kind, key, _ in sampler.events if kind == "finish"] != ref_finishes
    assert reference.metrics["branch/forks"] > 0


def test_forks_competing_for_the_last_slots_get_the_same_share_in_any_order():
    cfg = config(
        rollout={"group_size": 5, "initial_samples": 3, "max_tool_calls": 3, "tool_concurrency": 4},
        branching={"rule": "stochastic", "alpha": 1.0, "beam_width": 3},  # every decision forks
    )
    reference, _ = rollout(cfg, "batch", 0, prompts=2)
    for group in reference.groups:
        assert len(group.paths) == 5
        starved = [d for p in group.paths for d in p.decisions if d.forked and len(d.children) < 2]
        assert starved, "the budget should have cut some forks short"
    for schedule, schedule_seed in SCHEDULES[1:]:
        assert comparable(rollout(cfg, schedule, schedule_seed, prompts=2)[0]) == comparable(reference)


def test_a_different_seed_gives_different_trees():
    cfg = config(branching={"rule": "stochastic"})
    a, _ = rollout(cfg, "batch", 0, seed=1)
    b, _ = rollout(cfg, "batch", 0, seed=2)
    assert comparable(a) != comparable(b)


def test_every_request_and_every_fork_gets_its_own_seed():
    cfg = config(rollout={"group_size": 8, "initial_samples": 2}, branching={"rule": "stochastic", "alpha": 1.0})
    batch, sampler = rollout(cfg, "tokens", 0)
    seeds = [r.seed for r in sampler.requests]
    assert len(set(seeds)) == len(seeds)
    assert batch.metrics["branch/forks"] > 0


class SlowStepSampler(ScriptedSampler):
    """One token per step, a millisecond per step: time enough for a tool to return mid-segment."""

    def step(self):
        time.sleep(0.001)
        return super().step()


def test_a_path_goes_on_as_soon_as_its_tool_returns_without_waiting_for_slower_paths():
    def script(ctx: ScriptContext) -> Reply:
        if "slow" in ctx.text:
            return Reply("<think>" + "x" * 300 + "</think><answer>\\boxed{1}</answer>")
        if results_so_far(ctx) < 3:
            return Reply("<upper>hi</upper>")
        return Reply("<answer>\\boxed{HI}</answer>")

    sampler = SlowStepSampler(script, VOCAB, schedule="tokens")
    deps = RolloutDeps(sampler, {"upper": UpperTool()}, get_format("tags"), random.Random(0))
    cfg = config(rollout={"group_size": 1, "initial_samples": 1}, branching={"enabled": False})
    batch = run_rollouts([Sample("slow"), Sample("fast")], cfg, deps)

    slow_key = sampler.events[0][1]  # prompt 0's first request
    finishes = [key for kind, key, _ in sampler.events if kind == "finish"]
    # all four segments of the fast path (three tool calls apart) ended while the slow one decoded
    assert len(finishes) == 5 and finishes[-1] == slow_key
    assert len(batch.groups[1].paths[0].tool_calls) == 3
    assert batch.metrics["rollout/rounds"] == 4  # the fast path's chain of segments
    assert batch.metrics["rollout/sampler_steps"] < 400  # one pass over the slow segment, not four


def events(sampler: ScriptedSampler, kind: str, prefix: str) -> list[int]:
    """Positions in the sampler's event log of the `kind` events whose key starts with `prefix`."""
    return [i for i, (k, key, _) in enumerate(sampler.events) if k == kind and key.startswith(prefix)]


def single_call_run(script, cfg, *, eager: bool, schedule: str | None = None) -> tuple[RolloutBatch, ScriptedSampler]:
    sampler = ScriptedSampler(script, VOCAB, schedule="tokens")
    deps = RolloutDeps(sampler, {"upper": UpperTool()}, get_format("tags"), random.Random(0))
    schedule = schedule or ("eager" if eager else "literal")
    return run_rollouts([Sample("q")], cfg, deps, schedule=schedule), sampler  # type: ignore[arg-type]


@pytest.mark.parametrize("eager", [True, False])
def test_a_supplement_starts_once_forks_can_no_longer_fill_m_not_when_the_last_path_ends(eager):
    def script(ctx: ScriptContext) -> Reply:
        slow = "slow" in ctx.text or (ctx.call == 1 and results_so_far(ctx) == 0)
        if results_so_far(ctx) == 0:
            return Reply("<think>slow" + "x" * 200 + "</think><upper>b</upper>" if slow else "<upper>a</upper>")
        return Reply("<answer>\\boxed{1}</answer>", 1.0)

    # M=4, N=2, one call each, and the threshold rule never forks: two supplements in the end. Path a
    # decides quickly, so only path b could still fork, into one slot: one supplement is certain at once.
    cfg = config(rollout={"group_size": 4, "initial_samples": 2, "max_tool_calls": 1}, branching={"tau": 10.0})
    batch, sampler = single_call_run(script, cfg, eager=eager)
    assert batch.groups[0].supplements == 2
    slow_path_ends = events(sampler, "finish", "0/0.1/")[-1]
    first_supplement = events(sampler, "submit", "0/2.0/")[0]
    second_supplement = events(sampler, "submit", "0/2.1/")[0]
    assert (first_supplement < slow_path_ends) == eager
    # the second once b has decided not to fork, from the first tokens after its tool result
    assert (second_supplement < slow_path_ends) == eager
    if eager:
        assert first_supplement < events(sampler, "submit", "0/0.1/1")[0] < second_supplement
    reference, _ = single_call_run(script, cfg, eager=not eager)
    assert comparable(batch) == comparable(reference)


@pytest.mark.parametrize("eager", [True, False])
def test_a_fork_starts_when_its_window_is_decoded_not_when_the_segment_ends(eager):
    def script(ctx: ScriptContext) -> Reply:
        if results_so_far(ctx) == 0:
            return Reply("<upper>a</upper>", 1.0)
        return Reply("<think>" + "x" * 100 + "</think><answer>\\boxed{1}</answer>", 3.0)  # rising: forks

    cfg = config(rollout={"group_size": 2, "initial_samples": 1, "max_tool_calls": 1})
    batch, sampler = single_call_run(script, cfg, eager=eager)
    assert batch.metrics["branch/forks"] == 1
    parent_segment = "0/0.0/1"  # the parent's segment after its tool result
    fork_starts = events(sampler, "submit", "0/0.0.1.0/")[0]
    assert (fork_starts < events(sampler, "finish", parent_segment)[0]) == eager
    assert bool(events(sampler, "window", parent_segment)) == eager
    reference, _ = single_call_run(script, cfg, eager=not eager)
    assert comparable(batch) == comparable(reference)


def test_a_fork_is_sent_with_its_parents_continuation_and_adopted_when_granted():
    def script(ctx: ScriptContext) -> Reply:
        if results_so_far(ctx) == 0:
            return Reply("<upper>a</upper>", 1.0)
        return Reply("<think>" + "x" * 100 + "</think><answer>\\boxed{1}</answer>", 3.0)  # rising: forks

    cfg = config(rollout={"group_size": 2, "initial_samples": 1, "max_tool_calls": 1})
    batch, sampler = single_call_run(script, cfg, eager=True, schedule="ahead")
    assert batch.metrics["branch/forks"] == 1
    [parent_continues] = events(sampler, "submit", "0/0.0/1")
    [fork_starts] = events(sampler, "submit", "0/0.0.1.0/0")  # sent once: adopted, not sent again
    assert fork_starts == parent_continues + 1
    assert not events(sampler, "abort", "0/0.0.1.0/")
    # a supplement was likely too (at alpha = 0.5), until the fork took the last slot
    assert events(sampler, "submit", "0/2.0/0") and batch.groups[0].supplements == 0
    assert batch.metrics["rollout/ahead_sent"] == 2 and batch.metrics["rollout/ahead_discarded"] == 1
    reference, _ = single_call_run(script, cfg, eager=False)
    assert comparable(batch) == comparable(reference)


def test_a_fork_sent_ahead_is_aborted_when_the_decision_does_not_fork():
    def script(ctx: ScriptContext) -> Reply:
        if results_so_far(ctx) == 0:
            return Reply("<upper>a</upper>", 1.0)
        return Reply("<think>" + "x" * 100 + "</think><answer>\\boxed{1}</answer>", 0.5)  # falling: no fork

    cfg = config(rollout={"group_size": 2, "initial_samples": 1, "max_tool_calls": 1})
    batch, sampler = single_call_run(script, cfg, eager=True, schedule="ahead")
    assert batch.metrics["branch/forks"] == 0 and batch.groups[0].supplements == 1
    [aborted] = events(sampler, "abort", "0/0.0.1.0/0")
    assert aborted < events(sampler, "finish", "0/0.0/1")[0]  # at the decision, not when the parent ends
    assert batch.metrics["rollout/ahead_discarded"] == 1
    reference, _ = single_call_run(script, cfg, eager=False)
    assert comparable(batch) == comparable(reference)


def slow_b_script(ctx: ScriptContext) -> Reply:
    """Path b (the second request) thinks long before its call; everyone else calls at once."""
    if results_so_far(ctx) == 0:
        slow = ctx.call == 1 or "slow" in ctx.text
        return Reply("<think>slow" + "x" * 600 + "</think><upper>b</upper>" if slow else "<upper>a</upper>", 1.0)
    return Reply("<answer>\\boxed{1}</answer>", 1.0)


def ahead_run(cfg: Any) -> tuple[RolloutBatch, SlowStepSampler, UpperTool]:
    sampler, tool = SlowStepSampler(slow_b_script, VOCAB, schedule="tokens"), UpperTool()
    deps = RolloutDeps(sampler, {"upper": tool}, get_format("tags"), random.Random(0))
    return run_rollouts([Sample("q")], cfg, deps, schedule="ahead"), sampler, tool


# M=4, N=2, one call each, never forking (tau): 2 supplements. At alpha = 0.5 the two open decisions are
# expected to fork once, so one supplement is likely from the start.
LIKELY = config(rollout={"group_size": 4, "initial_samples": 2, "max_tool_calls": 1}, branching={"tau": 10.0})


def test_a_likely_supplement_runs_ahead_tool_calls_included_when_no_tool_acts_outside_its_sandbox():
    batch, sampler, tool = ahead_run(LIKELY)
    assert batch.groups[0].supplements == 2
    [ahead] = events(sampler, "submit", "0/2.0/0")
    [after_its_tool] = events(sampler, "submit", "0/2.0/1")
    assert ahead < after_its_tool < events(sampler, "finish", "0/0.1/0")[0]  # while b still thinks
    assert tool.calls == 4  # no call for a path the tree does not hold
    reference, _ = single_call_run(slow_b_script, LIKELY, eager=False)
    assert comparable(batch) == comparable(reference)


def test_with_a_tool_that_acts_outside_its_sandbox_a_likely_supplement_waits_at_its_call():
    hook = ToolConfig(name="hook", kind="http", options={"url": "https://example.invalid/hook"})
    cfg = dataclasses.replace(LIKELY, tools=(hook,))
    batch, sampler, tool = ahead_run(cfg)
    assert batch.groups[0].supplements == 2
    [ahead] = events(sampler, "submit", "0/2.0/0")
    decision = events(sampler, "window", "0/0.0/1")[0]  # path a decides: one supplement is certain
    [after_its_tool] = events(sampler, "submit", "0/2.0/1")
    assert ahead < decision < after_its_tool
    assert tool.calls == 4
    reference, _ = single_call_run(slow_b_script, cfg, eager=False)
    assert comparable(batch) == comparable(reference)
