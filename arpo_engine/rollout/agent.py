"""The agent loop with ARPO's entropy-based adaptive branching (ARPO_SPEC.md §1-2).

Each round generates one segment for every live path in a single batch: up to a tool call's closing
marker, EOS, or the response budget. Then, per path:
1. The first segment's first k tokens give H_initial.
2. A segment that follows tool result t gives H_t from its first k tokens; dH = H_t - H_initial
   decides the fork at the boundary of result t. This is the lag-free order: the official code decides
   after tool t with the entropy measured after tool t-1.
3. A tool call is executed (all of a round's calls run concurrently) and its result is appended with
   mask 0.
Forks copy the parent's tokens up to the boundary and sample on from there in the next round; they
inherit H_initial and do not decide again at the boundary they start from. A prompt never holds more
than M paths; once all of its paths have ended below M, the missing ones are added as fresh samples at
once (the official code adds one per iteration). All branching state lives in this call, so nothing
leaks between training steps (the official code keeps H_initial in a dict that is never reset).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from arpo_engine import branching
from arpo_engine.config import RunConfig
from arpo_engine.entropy import window_entropy
from arpo_engine.rollout.formats import CallFormat, ParsedCall
from arpo_engine.rollout.metrics import rollout_metrics
from arpo_engine.rollout.sampler import GenRequest, GenResult, Sampler
from arpo_engine.rollout.types import BranchDecision, Path, RolloutGroup, Segment, ToolEvent
from arpo_engine.tools.base import Tool, ToolResult


class PromptSample(Protocol):
    """What the loop needs from a dataset row (arpo_engine.data.Sample satisfies it)."""

    @property
    def messages(self) -> Sequence[Mapping[str, Any]]: ...


@dataclass
class RolloutDeps:
    sampler: Sampler
    tools: Mapping[str, Tool]
    call_format: CallFormat
    rng: random.Random
    """Source of every branching draw and per-request sampling seed."""


@dataclass
class RolloutBatch:
    groups: list[RolloutGroup]
    metrics: dict[str, float]


@dataclass
class _Live:
    """Loop bookkeeping for one path; dropped when the rollout returns."""

    group: RolloutGroup
    path: Path
    computed: int = 0
    """Context tokens (prompt + response) already in the sampler's cache, for prefill accounting."""
    pending_tool: int | None = None
    """t when the last thing appended was tool result t and its H_t window is still to come."""


@dataclass
class _GroupState:
    group: RolloutGroup
    budget_tokens: int
    consecutive: int = 0
    """Rounds in a row in which this prompt forked (AEPO's l)."""
    awaiting_probe: bool = False
    """AEPO dynamic budget: the probe path is running and N is not chosen yet."""


@dataclass
class _Counters:
    generated: int = 0
    prefill: int = 0
    prefill_new: int = 0
    rounds: int = 0
    tool_seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


def build_prompt_ids(
    tokenizer: Any, messages: Sequence[Mapping[str, Any]], system_prompt: str
) -> tuple[list[int], str]:
    """Chat-template the prompt with the tool description merged into the system message."""
    msgs = [dict(m) for m in messages]
    if msgs and msgs[0].get("role") == "system":
        msgs[0]["content"] = f"{msgs[0]['content']}\n\n{system_prompt}"
    else:
        msgs.insert(0, {"role": "system", "content": system_prompt})
    text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return list(ids), text


def run_rollouts(
    samples: Sequence[PromptSample],
    config: RunConfig,
    deps: RolloutDeps,
    *,
    greedy: bool = False,
    first_index: int = 0,
) -> RolloutBatch:
    """Roll out every prompt; greedy = validation decoding (one path, temperature 0, no branching)."""
    started = time.perf_counter()
    rc, bc = config.rollout, config.branching
    branching_on = bc.enabled and not greedy
    budget = 1 if greedy else rc.group_size
    initial = budget if greedy or not bc.enabled else rc.initial_samples  # GRPO: N = M
    system_prompt = deps.call_format.system_prompt(deps.tools, config.system_prompt)
    stops = deps.call_format.stop_strings(deps.tools)
    counters = _Counters()

    states: list[_GroupState] = []
    live: list[_Live] = []
    for i, sample in enumerate(samples):
        prompt_ids, prompt_text = build_prompt_ids(deps.sampler.tokenizer, sample.messages, system_prompt)
        if len(prompt_ids) > config.data.max_prompt_tokens:
            raise ValueError(
                f"prompt {first_index + i} has {len(prompt_ids)} tokens with the system prompt, "
                f"over data.max_prompt_tokens={config.data.max_prompt_tokens}"
            )
        group = RolloutGroup(
            prompt_index=first_index + i,
            prompt_ids=prompt_ids,
            prompt_text=prompt_text,
            sample=_sample_dict(sample),
            initial_samples=initial,
            budget=budget,
            entropy_estimator=deps.sampler.entropy_estimator,
        )
        budget_tokens = min(rc.max_response_tokens, config.model.max_model_len - len(prompt_ids))
        state = _GroupState(group, budget_tokens, awaiting_probe=branching_on and bc.dynamic_budget)
        states.append(state)
        n_start = 1 if state.awaiting_probe else initial
        live.extend(_new_path(group, "initial") for _ in range(n_start))

    temperature = 0.0 if greedy else rc.temperature
    while live:
        counters.rounds += 1
        results = _generate(live, states_by_group(states), stops, temperature, rc.top_p, deps, counters)
        calls: list[tuple[_Live, ParsedCall]] = []
        for lv, res in zip(live, results, strict=True):
            call = _absorb_segment(lv, res, config, deps)
            if call is not None:
                calls.append((lv, call))
        new_paths = _branch(live, results, states, config, deps) if branching_on else []
        tool_started = time.perf_counter()
        _run_tools(calls, states_by_group(states), config, deps)
        counters.tool_seconds += time.perf_counter() - tool_started
        live = [lv for lv in live if not lv.path.finished] + new_paths
        live.extend(_refill(states, live, config, deps, branching_on))

    elapsed = time.perf_counter() - started
    groups = [s.group for s in states]
    metrics = rollout_metrics(
        groups,
        rollout_seconds=elapsed,
        tool_seconds=counters.tool_seconds,
        generated_tokens=counters.generated,
        prefill_tokens=counters.prefill,
        prefill_new_tokens=counters.prefill_new,
        rounds=counters.rounds,
    )
    return RolloutBatch(groups=groups, metrics=metrics)


def states_by_group(states: Sequence[_GroupState]) -> dict[int, _GroupState]:
    return {id(s.group): s for s in states}


def _sample_dict(sample: PromptSample) -> dict[str, Any]:
    if hasattr(sample, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(sample)  # type: ignore[call-overload, no-any-return]
    return {"messages": list(sample.messages)}


def _new_path(group: RolloutGroup, origin: str) -> _Live:
    path = Path(id=len(group.paths), origin=origin)  # type: ignore[arg-type]
    group.paths.append(path)
    return _Live(group=group, path=path)


def _generate(
    live: Sequence[_Live],
    by_group: Mapping[int, _GroupState],
    stops: tuple[str, ...],
    temperature: float,
    top_p: float,
    deps: RolloutDeps,
    counters: _Counters,
) -> list[GenResult]:
    requests = []
    computed_prompts: set[int] = set()
    for lv in live:
        context = lv.group.prompt_ids + lv.path.token_ids
        remaining = by_group[id(lv.group)].budget_tokens - len(lv.path.token_ids)
        requests.append(GenRequest(context, max_tokens=remaining, stop=stops, seed=deps.rng.getrandbits(31)))
        counters.prefill += len(context)
        if lv.computed == 0 and id(lv.group) in computed_prompts:
            lv.computed = len(lv.group.prompt_ids)  # a sibling in this batch prefills the same prompt
        counters.prefill_new += len(context) - lv.computed
        computed_prompts.add(id(lv.group))
    results = deps.sampler.generate(requests, temperature=temperature, top_p=top_p)
    counters.generated += sum(len(res.token_ids) for res in results)
    return results


def _absorb_segment(lv: _Live, res: GenResult, config: RunConfig, deps: RolloutDeps) -> ParsedCall | None:
    """Append a generated segment; return the tool call it ends with, if it should be executed."""
    path = lv.path
    start = len(path.token_ids)
    path.token_ids.extend(res.token_ids)
    path.mask.extend([1] * len(res.token_ids))
    path.entropies.extend(res.entropies)
    path.segments.append(Segment("model", start, len(path.token_ids), res.text))
    lv.computed = len(lv.group.prompt_ids) + len(path.token_ids)
    if res.finish_reason == "eos":
        path.finish_reason = "eos"
        return None
    if res.finish_reason == "length" or not res.token_ids:
        path.finish_reason = "length"
        return None
    parsed = deps.call_format.parse_call(path.segments[-1].text, deps.tools)
    if parsed is None:  # a stop string that is not a well-formed call end
        path.finish_reason = "stop"
        return None
    if len(path.tool_calls) >= config.rollout.max_tool_calls:
        path.finish_reason = "call_limit"  # official behaviour: the trajectory ends here
        return None
    return parsed


def _branch(
    live: Sequence[_Live],
    results: Sequence[GenResult],
    states: Sequence[_GroupState],
    config: RunConfig,
    deps: RolloutDeps,
) -> list[_Live]:
    """Take the entropy measurements of this round's segments and fork where the rule says so."""
    bc = config.branching
    vocab = deps.sampler.vocab_size
    forked_groups: set[int] = set()
    decided_groups: set[int] = set()
    by_group = states_by_group(states)
    new: list[_Live] = []
    for lv, res in zip(live, results, strict=True):
        path = lv.path
        window = res.entropies[: bc.entropy_window]
        if len(path.segments) == 1 and path.origin != "fork":
            path.h_initial = window_entropy(window, vocab, bc.window_reduce)
        t, lv.pending_tool = lv.pending_tool, None
        if t is None or path.h_initial is None or not res.token_ids:
            continue
        state = by_group[id(lv.group)]
        h_t = window_entropy(window, vocab, bc.window_reduce)
        delta = h_t - path.h_initial
        decision = branching.decide(delta, bc, consecutive=state.consecutive, draw=deps.rng.random())
        boundary = path.tool_calls[t - 1].result_end
        record = BranchDecision(t, boundary, h_t, delta, decision.score, decision.draw, decision.forked)
        path.decisions.append(record)
        decided_groups.add(id(lv.group))
        if not decision.forked:
            continue
        for _ in range(branching.fork_count(len(lv.group.paths), lv.group.budget, bc.beam_width)):
            child = _fork(lv, boundary, t)
            record.children.append(child.path.id)
            new.append(child)
        if record.children:
            forked_groups.add(id(lv.group))
    for state in states:
        if id(state.group) in forked_groups:
            state.consecutive += 1
        elif id(state.group) in decided_groups:
            state.consecutive = 0
    return new


def _fork(parent: _Live, boundary: int, t: int) -> _Live:
    src = parent.path
    child = _new_path(parent.group, "fork")
    p = child.path
    p.parent, p.fork_boundary, p.fork_tool_index, p.h_initial = src.id, boundary, t, src.h_initial
    p.token_ids = src.token_ids[:boundary]
    p.mask = src.mask[:boundary]
    p.entropies = src.entropies[:boundary]
    p.segments = [s for s in src.segments if s.end <= boundary]
    p.tool_calls = src.tool_calls[:t]
    p.decisions = [d for d in src.decisions if d.tool_index < t]
    # The parent generated past the boundary, so the whole shared prefix is in the cache already.
    child.computed = len(parent.group.prompt_ids) + boundary
    return child


def _run_tools(
    calls: Sequence[tuple[_Live, ParsedCall]],
    by_group: Mapping[int, _GroupState],
    config: RunConfig,
    deps: RolloutDeps,
) -> None:
    if not calls:
        return
    workers = max(1, min(config.rollout.tool_concurrency, len(calls)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(lambda c: _call_tool(c[1], deps.tools), calls))
    for (lv, parsed), (result, latency_ms) in zip(calls, outcomes, strict=True):
        _append_result(lv, parsed, result, latency_ms, by_group[id(lv.group)].budget_tokens, config, deps)


def _call_tool(parsed: ParsedCall, tools: Mapping[str, Tool]) -> tuple[ToolResult, float]:
    started = time.perf_counter()
    call = parsed.call
    if parsed.error is not None:
        result = ToolResult(output=f"Error: {parsed.error}", error="bad_call")
    elif call.name not in tools:
        known = ", ".join(tools) or "none"
        message = f"Error: no tool named {call.name!r} (tools: {known})"
        result = ToolResult(output=message, error="unknown_tool")
    else:
        try:
            result = tools[call.name].run(call.arguments)
        except Exception as exc:  # a tool must not take the rollout down with it
            result = ToolResult(output=f"Error: the tool failed: {exc}", error="tool_crash")
    return result, (time.perf_counter() - started) * 1000.0


def _append_result(
    lv: _Live,
    parsed: ParsedCall,
    result: ToolResult,
    latency_ms: float,
    budget_tokens: int,
    config: RunConfig,
    deps: RolloutDeps,
) -> None:
    path = lv.path
    output = result.output
    limit = config.rollout.tool_result_max_chars
    if len(output) > limit:
        output = output[:limit] + "\n[output truncated]"
    text = deps.call_format.render_result(output)
    ids = deps.sampler.tokenizer(text, add_special_tokens=False)["input_ids"]
    room = budget_tokens - len(path.token_ids)
    if len(ids) >= room:  # no room left for the model to read the result and go on
        ids = ids[: max(0, room)]
        text = deps.sampler.tokenizer.decode(ids)
        path.finish_reason = "length"
    start = len(path.token_ids)
    path.token_ids.extend(ids)
    path.mask.extend([0] * len(ids))
    path.entropies.extend([None] * len(ids))
    path.segments.append(Segment("tool", start, len(path.token_ids), text))
    event = ToolEvent(
        index=len(path.tool_calls) + 1,
        name=parsed.call.name,
        arguments=dict(parsed.call.arguments),
        raw=parsed.call.raw,
        output=output,
        error=result.error,
        latency_ms=result.latency_ms or latency_ms,
        result_start=start,
        result_end=len(path.token_ids),
    )
    path.tool_calls.append(event)
    lv.pending_tool = event.index


def _refill(
    states: Sequence[_GroupState],
    live: Sequence[_Live],
    config: RunConfig,
    deps: RolloutDeps,
    branching_on: bool,
) -> list[_Live]:
    """Start paths for groups whose live paths have all ended: the AEPO probe's N, or supplements to M."""
    busy = {id(lv.group) for lv in live}
    added: list[_Live] = []
    for state in states:
        group = state.group
        if id(group) in busy or len(group.paths) >= group.budget:
            continue
        if state.awaiting_probe:
            state.awaiting_probe = False
            probe = group.paths[0]
            h_tool = [d.h_t for d in probe.decisions]
            h_root = probe.h_initial or 0.0
            n = branching.dynamic_initial_samples(
                group.budget, h_root, sum(h_tool) / len(h_tool) if h_tool else h_root
            )
            group.initial_samples = n
            extra = max(0, min(n, group.budget) - len(group.paths))
            added.extend(_new_path(group, "initial") for _ in range(extra))
            if extra:
                continue
        missing = group.budget - len(group.paths)
        group.supplements += missing
        added.extend(_new_path(group, "supplement") for _ in range(missing))
    return added
