"""The agent loop driven by a scripted sampler: masks, branching, budget, supplements, limits."""

import math
import random
from collections.abc import Mapping
from typing import Any

import pytest

from arpo_engine.config import RunConfig
from arpo_engine.rollout.agent import RolloutDeps, run_rollouts
from arpo_engine.rollout.formats import get_format
from arpo_engine.rollout.scripted import Reply, ScriptContext, ScriptedSampler
from arpo_engine.tools.base import ToolResult, function_schema

VOCAB = 256


class UpperTool:
    """A real (if tiny) tool: upper-cases its input."""

    name = "upper"
    primary_argument = "text"

    def __init__(self) -> None:
        self.calls = 0

    def schema(self) -> dict[str, Any]:
        return function_schema("upper", "Upper-case a text.", {"text": {"type": "string"}}, ["text"])

    def run(self, arguments: Mapping[str, Any]) -> ToolResult:
        self.calls += 1
        return ToolResult(output=str(arguments["text"]).upper())


class Sample:
    def __init__(self, question: str) -> None:
        self.messages = [{"role": "user", "content": question}]


def response(ctx: ScriptContext) -> str:
    return ctx.text.split("<|assistant|>", 1)[1]


def results_so_far(ctx: ScriptContext) -> int:
    return response(ctx).count("<result>")


def agent_script(*, calls: int, entropy_after: list[float], initial: float = 1.0):
    """Call `upper` `calls` times, then answer; entropy_after[t-1] is reported after result t."""

    def script(ctx: ScriptContext) -> Reply:
        done = results_so_far(ctx)
        entropy = initial if done == 0 else entropy_after[min(done, len(entropy_after)) - 1]
        if done < calls:
            return Reply(f"<think>step {done}</think><upper>x{done}</upper>", entropy)
        return Reply("<answer>\\boxed{X}</answer>", entropy)

    return script


def config(**overrides: Any) -> RunConfig:
    raw: dict[str, Any] = {
        "tools": [],
        "data": {"max_prompt_tokens": 2000},
        "model": {"max_model_len": 8000},
        "rollout": {"group_size": 4, "initial_samples": 2, "max_tool_calls": 3, "max_response_tokens": 2000},
        "branching": {"rule": "threshold", "entropy_window": 5},
    }
    for section, values in overrides.items():
        raw[section] = {**raw.get(section, {}), **values}
    return RunConfig.from_dict(raw).validate()


def run(script, cfg: RunConfig, prompts: int = 1, fmt: str = "tags", seed: int = 0):
    sampler = ScriptedSampler(script, vocab_size=VOCAB)
    tool = UpperTool()
    deps = RolloutDeps(sampler, {"upper": tool}, get_format(fmt), random.Random(seed))
    batch = run_rollouts([Sample(f"question {i}") for i in range(prompts)], config=cfg, deps=deps)
    return batch, sampler, tool


def test_tool_results_are_appended_with_mask_zero_and_model_tokens_with_mask_one():
    cfg = config(branching={"enabled": False})
    batch, sampler, _ = run(agent_script(calls=2, entropy_after=[1.0]), cfg)
    path = batch.groups[0].paths[0]
    assert len(path.tool_calls) == 2
    tool_positions = set()
    for call in path.tool_calls:
        span = path.token_ids[call.result_start : call.result_end]
        assert sampler.tokenizer.decode(span) == get_format("tags").render_result(call.output)
        tool_positions.update(range(call.result_start, call.result_end))
    for i, m in enumerate(path.mask):
        assert m == (0 if i in tool_positions else 1)
    assert all((e is None) == (i in tool_positions) for i, e in enumerate(path.entropies))
    assert path.tool_calls[0].output == "X0"
    assert path.finish_reason == "eos"
    assert path.text.endswith("<answer>\\boxed{X}</answer>")


def test_grpo_baseline_samples_m_independent_paths_without_branching():
    cfg = config(branching={"enabled": False})
    batch, _, tool = run(agent_script(calls=2, entropy_after=[5.0, 5.0]), cfg)
    group = batch.groups[0]
    assert [p.origin for p in group.paths] == ["initial"] * 4
    assert all(not p.decisions for p in group.paths)
    assert tool.calls == 8


def test_rising_entropy_after_a_tool_forks_under_threshold_rule():
    cfg = config(rollout={"group_size": 3, "initial_samples": 1, "max_tool_calls": 1})
    batch, _, _ = run(agent_script(calls=1, entropy_after=[2.0]), cfg)
    paths = batch.groups[0].paths
    parent, child = paths[0], paths[1]
    decision = parent.decisions[0]
    assert decision.forked and decision.children == [1]
    expected_h = 5 * 2.0 / math.log(VOCAB)
    assert decision.h_t == pytest.approx(expected_h)
    assert decision.delta_h == pytest.approx(expected_h - 5 * 1.0 / math.log(VOCAB))
    assert child.origin == "fork" and child.parent == 0 and child.fork_tool_index == 1
    assert child.h_initial == parent.h_initial
    boundary = parent.tool_calls[0].result_end
    assert child.fork_boundary == boundary
    assert child.token_ids[:boundary] == parent.token_ids[:boundary]
    assert child.decisions == []  # a fork does not decide again at the boundary it starts from


@pytest.mark.parametrize("after", [1.0, 0.5])
def test_equal_or_falling_entropy_does_not_fork_under_threshold_rule(after):
    cfg = config(rollout={"group_size": 3, "initial_samples": 1, "max_tool_calls": 1})
    batch, _, _ = run(agent_script(calls=1, entropy_after=[after]), cfg)
    group = batch.groups[0]
    assert not group.paths[0].decisions[0].forked
    assert [p.origin for p in group.paths] == ["initial", "supplement", "supplement"]


def test_stochastic_rule_draws_come_from_the_injected_rng():
    cfg = config(branching={"rule": "stochastic"}, rollout={"group_size": 16, "initial_samples": 8})
    a, _, _ = run(agent_script(calls=2, entropy_after=[1.0, 1.0]), cfg, seed=3)
    b, _, _ = run(agent_script(calls=2, entropy_after=[1.0, 1.0]), cfg, seed=3)
    decisions_a = [(d.draw, d.forked) for p in a.groups[0].paths for d in p.decisions]
    decisions_b = [(d.draw, d.forked) for p in b.groups[0].paths for d in p.decisions]
    assert decisions_a == decisions_b
    # equal entropy: probability alpha = 0.5, so a fork happens exactly when the draw is below it
    assert all(forked == (draw < 0.5) for draw, forked in decisions_a)
    assert any(f for _, f in decisions_a) and not all(f for _, f in decisions_a)


def test_budget_is_never_exceeded_even_when_every_decision_forks():
    for m, n, z in [(4, 1, 2), (5, 2, 3), (16, 8, 2), (7, 1, 4)]:
        cfg = config(
            rollout={"group_size": m, "initial_samples": n, "max_tool_calls": 5},
            branching={"beam_width": z},
        )
        batch, _, _ = run(agent_script(calls=5, entropy_after=[9.0] * 5), cfg, prompts=2)
        for group in batch.groups:
            assert len(group.paths) == m
            assert group.supplements == 0


def test_supplements_fill_each_group_to_m_at_once():
    cfg = config(rollout={"group_size": 6, "initial_samples": 2})
    batch, _sampler, _ = run(agent_script(calls=1, entropy_after=[0.1]), cfg, prompts=2)
    for group in batch.groups:
        assert len(group.paths) == 6
        assert group.supplements == 4
        assert [p.origin for p in group.paths].count("supplement") == 4
    assert batch.metrics["branch/supplements"] == 8
    # 2 segments in a row for the first paths, then 2 in which all 8 supplements run together
    assert batch.metrics["rollout/rounds"] == 4
    # a batch sampler decodes each of those waves as one batch, like a synchronous loop
    assert batch.metrics["rollout/sampler_steps"] == 4


def test_decision_after_tool_t_uses_entropy_measured_after_result_t():
    cfg = config(rollout={"group_size": 1, "initial_samples": 1})
    batch, _, _ = run(agent_script(calls=2, entropy_after=[3.0, 0.2]), cfg)
    decisions = batch.groups[0].paths[0].decisions
    assert [d.tool_index for d in decisions] == [1, 2]
    assert decisions[0].h_t == pytest.approx(5 * 3.0 / math.log(VOCAB))
    assert decisions[1].h_t == pytest.approx(5 * 0.2 / math.log(VOCAB))


def test_call_limit_ends_the_trajectory_with_eos_without_running_the_extra_call():
    cfg = config(rollout={"group_size": 1, "initial_samples": 1, "max_tool_calls": 1})
    batch, sampler, tool = run(agent_script(calls=3, entropy_after=[1.0]), cfg)
    path = batch.groups[0].paths[0]
    assert len(path.tool_calls) == 1 and tool.calls == 1
    assert path.finish_reason == "call_limit"
    assert batch.metrics["tools/limit_hits"] == 1
    # ARPO_SPEC.md §1: the trajectory ends with EOS, appended after the unrun call; not sampled, so not trained
    assert path.token_ids[-1] == sampler.tokenizer.eos_token_id and path.mask[-1] == 0
    assert path.text.endswith("<upper>x1</upper>") and path.segments[-1].end == len(path.token_ids)
    assert path.token_ids[-2] == ord(">") and path.mask[-2] == 1


def test_response_budget_counts_tool_tokens():
    cfg = config(rollout={"group_size": 1, "initial_samples": 1, "max_response_tokens": 60})
    batch, _, _ = run(agent_script(calls=3, entropy_after=[1.0]), cfg)
    path = batch.groups[0].paths[0]
    assert len(path.token_ids) == 60
    assert path.finish_reason == "length"
    assert 0 in path.mask
    assert batch.metrics["response/clip_frac"] == 1.0


def test_greedy_validation_samples_one_path_without_branching():
    cfg = config()
    sampler = ScriptedSampler(agent_script(calls=1, entropy_after=[9.0]), vocab_size=VOCAB)
    deps = RolloutDeps(sampler, {"upper": UpperTool()}, get_format("tags"), random.Random(0))
    batch = run_rollouts([Sample("q")], cfg, deps, greedy=True)
    assert len(batch.groups[0].paths) == 1
    assert batch.groups[0].paths[0].decisions == []


def test_malformed_hermes_call_becomes_an_error_observation():
    def script(ctx: ScriptContext) -> Reply:
        if "<tool_response>" not in response(ctx):
            return Reply('<tool_call>{"name": "upper", "arguments": {"text": </tool_call>')
        return Reply("<answer>\\boxed{1}</answer>")

    cfg = config(rollout={"group_size": 1, "initial_samples": 1})
    batch, _, tool = run(script, cfg, fmt="hermes")
    call = batch.groups[0].paths[0].tool_calls[0]
    assert call.error == "bad_call" and "not valid JSON" in call.output
    assert tool.calls == 0
    assert batch.metrics["tools/error_rate"] == 1.0


def test_hermes_call_runs_the_named_tool_with_json_arguments():
    def script(ctx: ScriptContext) -> Reply:
        if "<tool_response>" not in response(ctx):
            return Reply('<tool_call>{"name": "upper", "arguments": {"text": "abc"}}</tool_call>')
        return Reply("<answer>\\boxed{ABC}</answer>")

    cfg = config(rollout={"group_size": 1, "initial_samples": 1})
    batch, _, _ = run(script, cfg, fmt="hermes")
    call = batch.groups[0].paths[0].tool_calls[0]
    assert (call.name, call.output, call.error) == ("upper", "ABC", None)


def test_unknown_tool_is_reported_to_the_model():
    def script(ctx: ScriptContext) -> Reply:
        if "<tool_response>" not in response(ctx):
            return Reply('<tool_call>{"name": "shell", "arguments": {}}</tool_call>')
        return Reply("<answer>\\boxed{1}</answer>")

    cfg = config(rollout={"group_size": 1, "initial_samples": 1})
    batch, _, _ = run(script, cfg, fmt="hermes")
    call = batch.groups[0].paths[0].tool_calls[0]
    assert call.error == "unknown_tool" and "upper" in call.output


def test_metrics_count_shared_prefix_tool_calls_once():
    cfg = config(rollout={"group_size": 2, "initial_samples": 1, "max_tool_calls": 2})
    batch, _, tool = run(agent_script(calls=2, entropy_after=[9.0, 9.0]), cfg)
    group = batch.groups[0]
    assert len(group.paths) == 2
    # parent: 2 calls; fork after call 1 inherits call 1 and runs its own call 2
    assert tool.calls == 3
    assert batch.metrics["tools/calls_total"] == 3
    assert batch.metrics["tools/calls_per_traj"] == 2
    assert batch.metrics["branch/forks"] == 1
    # decisions: parent at t=1 (forks), parent and child at t=2 (the rule says fork, the budget is full)
    assert batch.metrics["branch/fork_rate"] == pytest.approx(1 / 3)
    assert [d.forked for p in group.paths for d in p.decisions] == [True, True, True]


def test_aepo_dynamic_budget_starts_one_probe_then_n_initial_paths():
    cfg = config(
        rollout={"group_size": 8, "initial_samples": 2},
        branching={"dynamic_budget": True, "rule": "threshold", "tau": 10.0},
    )
    batch, _, _ = run(agent_script(calls=1, entropy_after=[1.0]), cfg)
    group = batch.groups[0]
    # equal root and tool entropy: N = floor(8 * 0.5) + 1 = 5, the rest are supplements
    assert group.initial_samples == 5
    assert [p.origin for p in group.paths] == ["initial"] * 5 + ["supplement"] * 3


def test_same_seed_gives_the_same_tree():
    cfg = config(branching={"rule": "stochastic"})
    a, _, _ = run(agent_script(calls=2, entropy_after=[1.2, 0.8]), cfg, prompts=3, seed=7)
    b, _, _ = run(agent_script(calls=2, entropy_after=[1.2, 0.8]), cfg, prompts=3, seed=7)

    def tree(batch):
        groups = [g.to_dict() for g in batch.groups]
        for g in groups:
            for p in g["paths"]:
                for c in p["tool_calls"]:
                    c.pop("latency_ms")  # wall-clock time is the one thing allowed to differ
        return groups

    assert tree(a) == tree(b)


def test_hermes_parser_reads_the_last_call_of_a_multi_call_text():
    fmt = get_format("hermes")
    text = '<tool_call>{"name": "a", "arguments": {}}</tool_call> ok <tool_call>{"name": "b", "arguments": {"x": 1}}</tool_call>'
    parsed = fmt.parse_call(text, {})
    assert parsed is not None and parsed.error is None
    assert (parsed.call.name, dict(parsed.call.arguments)) == ("b", {"x": 1})


def test_consecutive_penalty_counts_rounds_in_a_row_in_which_the_prompt_branched():
    # dH = 5 * (2 - 1) / ln 256: score 0.5 + 0.2 * dH = 0.68 > tau, halved after a branched round to 0.34 < tau;
    # entropy 1.0 gives dH = 0 and 0.5 < tau. Path "a" forks at t=1; path "b" does not, but round 1 branched.
    cfg = config(
        rollout={"group_size": 16, "initial_samples": 2, "max_tool_calls": 3},
        branching={"tau": 0.6, "consecutive_penalty": 0.5},
    )
    after = {"a": [2.0, 2.0, 2.0], "b": [1.0, 2.0, 2.0], "s": [1.0, 1.0, 1.0]}  # s: supplements

    def script(ctx: ScriptContext) -> Reply:
        text = response(ctx)
        who = text[7] if text else ("ab"[ctx.call] if ctx.call < 2 else "s")  # "<think>a…" names the lineage
        done = results_so_far(ctx)
        entropy = 1.0 if done == 0 else after[who][done - 1]
        if done < 3:
            return Reply(f"<think>{who} {done}</think><upper>x{done}</upper>", entropy)
        return Reply("<answer>\\boxed{X}</answer>", entropy)

    batch, _, _ = run(script, cfg)
    paths = batch.groups[0].paths
    a, b = paths[0], paths[1]
    assert [d.forked for d in a.decisions] == [True, False, True]
    # b never forked before, yet its round-2 decision is penalized: the prompt branched in round 1
    assert [d.forked for d in b.decisions] == [False, False, True]
    assert b.decisions[1].score == pytest.approx(0.5 * a.decisions[0].score)
    # round 2 did not branch anywhere, so round 3 is not penalized, for a fork of round 1 either
    assert a.decisions[2].score == pytest.approx(a.decisions[0].score)
    child = paths[a.decisions[0].children[0]]
    assert [(d.tool_index, d.forked) for d in child.decisions] == [(2, False), (3, True)]


def test_a_failing_request_leaves_nothing_pending_in_the_sampler():
    def script(ctx: ScriptContext) -> Reply:
        if ctx.call == 5:
            raise RuntimeError("engine died")
        return agent_script(calls=2, entropy_after=[1.0, 1.0])(ctx)

    sampler = ScriptedSampler(script, vocab_size=VOCAB, schedule="tokens")
    deps = RolloutDeps(sampler, {"upper": UpperTool()}, get_format("tags"), random.Random(0))
    with pytest.raises(RuntimeError, match="engine died"):
        run_rollouts([Sample("q0"), Sample("q1")], config(), deps)
    assert sampler.pending() == 0
