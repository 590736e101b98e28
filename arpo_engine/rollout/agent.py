"""The agent loop with ARPO's entropy-based adaptive branching (ARPO_SPEC.md §1-2), event-driven.

Each path runs on its own. Its segment is generated up to a tool call's closing marker, EOS or the
response budget; a call runs in the tool thread pool as soon as its segment ends; as soon as the tool
returns, the result is appended with mask 0 and the continuation is submitted to the sampler, where it
joins whatever is decoding (vLLM batches continuously; a batch sampler decodes what is queued per step).
No path waits for another path's segment, which a loop in synchronous rounds did.

Branching, per path:
1. The first segment's first k tokens give H_initial.
2. The segment that follows tool result t gives H_t from its first k tokens; dH = H_t - H_initial
   decides the fork at the boundary of result t. This is the lag-free order: the official code decides
   after tool t with the entropy measured after tool t-1.
3. A fork copies the parent's tokens up to the boundary and is sampled on from there; it inherits
   H_initial and does not decide again at the boundary it starts from.
A prompt never holds more than M paths (`budget.grant` decides which forks get the last slots); the
paths it ends with below M are made up by fresh samples (supplements; the official code adds one per
iteration). What a supplement samples does not depend on when it starts, so it starts as soon as it is
certain: when all the forks still possible (`budget.possible_forks`, each live path bounded by its
remaining tool calls) can no longer fill M, not when the prompt's last path has ended. Likewise a branch
decision is taken as soon as the k tokens after its tool result are decoded (the sampler streams that
window, `WindowSampler`), so its forks start while the parent's segment goes on. And where the sampler
batches continuously, requests that will probably be wanted are sent ahead and adopted by their path
when it is created (`speculation.py`): forks' first segments with their parent's continuation, likely
supplements. The `schedule` of `run_rollouts` says how much of this to do: `literal` (supplements after
the last path, decisions at segment ends), `eager` (as soon as certain) or `ahead` (the default). All
three sample the same trees; they differ in when.

AEPO's consecutive-branch penalty counts l per prompt (ARPO_SPEC.md §6): the rounds in a row, ending
with the one before the decision's, in which the prompt branched (some path of the prompt forked there).
A round is a tool index: a decision after result t belongs to round t, as in a synchronous loop. A
decision whose l is not known yet (an earlier round where a path could still fork) waits while its path
goes on (`DeferredDecision`); only the fork, if any, comes later, at the same boundary. Supplements'
rounds count only for supplements, which in the algorithm start after every other path has ended.

Determinism: segments and tool calls finish in any order, so no random number comes from a shared
stream in completion order. Each request's seed and each decision's draw is derived from one base seed
(drawn from `deps.rng`) and a stable name (`seeding.py`); path ids are renumbered in a fixed order at the
end. The same rng state gives the same trees whatever the scheduling.

All branching state lives in this call, so nothing leaks between training steps (the official code keeps
H_initial in a dict that is never reset).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from arpo_engine import branching
from arpo_engine.config import RunConfig
from arpo_engine.entropy import window_entropy
from arpo_engine.rollout import paths
from arpo_engine.rollout.budget import PathKey, grant
from arpo_engine.rollout.formats import CallFormat, ParsedCall
from arpo_engine.rollout.group_state import (
    DeferredDecision,
    ForkClaim,
    GroupState,
    LivePath,
    certain_supplements,
    consecutive_rounds,
    likely_supplements,
)
from arpo_engine.rollout.metrics import rollout_metrics
from arpo_engine.rollout.sampler import GenRequest, GenResult, Sampler, WindowSampler
from arpo_engine.rollout.seeding import stable_seed, stable_uniform
from arpo_engine.rollout.speculation import AbortSampler, Speculation
from arpo_engine.rollout.types import BranchDecision, Origin, Path, RolloutGroup
from arpo_engine.tools.base import Tool, ToolResult

Schedule = Literal["literal", "eager", "ahead"]
"""When the loop starts what it starts (see the module docstring); never what is sampled."""

# Phases of fresh samples, the first part of their keys: ids are numbered phase by phase.
FIRST, AEPO_EXTRA, SUPPLEMENT = 0, 1, 2


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
    """Gives the base seed of every branching draw and per-request sampling seed (one draw per call)."""
    observe: Callable[[str, Path, Any], None] | None = None
    """Told `("tool_call", path, ParsedCall)` before a call runs and `("tool_result", path, ToolEvent)` after."""


@dataclass
class RolloutBatch:
    groups: list[RolloutGroup]
    metrics: dict[str, float]


@dataclass
class _Counters:
    generated: int = 0
    prefill: int = 0
    prefill_new: int = 0
    requests: int = 0
    sampler_steps: int = 0
    tool_wait_seconds: float = 0.0


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
    schedule: Schedule = "ahead",
) -> RolloutBatch:
    """Roll out every prompt; greedy = validation decoding (one path, temperature 0, no branching).

    `schedule`: `literal` as the algorithm is written (supplements once all other paths have ended,
    decisions when their segment has ended), `eager` (each as soon as it is certain), `ahead` (eager,
    and likely requests sent ahead). The same trees; kept to measure the difference.
    """
    started = time.perf_counter()
    bc = config.branching
    branching_on = bc.enabled and not greedy
    budget = 1 if greedy else config.rollout.group_size
    initial = budget if greedy or not bc.enabled else config.rollout.initial_samples  # GRPO: N = M
    system_prompt = deps.call_format.system_prompt(deps.tools, config.system_prompt)
    states = [
        _new_state(first_index + i, sample, system_prompt, budget, initial, config, deps, branching_on)
        for i, sample in enumerate(samples)
    ]
    loop = _Loop(config, deps, greedy=greedy, branching_on=branching_on, schedule=schedule)
    loop.run(states, initial)
    for state in states:
        paths.renumber(state.group, state.keys)

    c = loop.counters
    groups = [s.group for s in states]
    metrics = rollout_metrics(
        groups,
        rollout_seconds=time.perf_counter() - started,
        tool_seconds=c.tool_wait_seconds,
        generated_tokens=c.generated,
        prefill_tokens=c.prefill,
        prefill_new_tokens=c.prefill_new,
        rounds=max((s.max_depth for s in states), default=0),
        requests=c.requests,
        sampler_steps=c.sampler_steps,
    )
    if loop.ahead is not None:
        metrics.update(loop.ahead.metrics())
    return RolloutBatch(groups=groups, metrics=metrics)


def _new_state(
    index: int,
    sample: PromptSample,
    system_prompt: str,
    budget: int,
    initial: int,
    config: RunConfig,
    deps: RolloutDeps,
    branching_on: bool,
) -> GroupState:
    prompt_ids, prompt_text = build_prompt_ids(deps.sampler.tokenizer, sample.messages, system_prompt)
    if len(prompt_ids) > config.data.max_prompt_tokens:
        raise ValueError(
            f"prompt {index} has {len(prompt_ids)} tokens with the system prompt, "
            f"over data.max_prompt_tokens={config.data.max_prompt_tokens}"
        )
    group = RolloutGroup(
        prompt_index=index,
        prompt_ids=prompt_ids,
        prompt_text=prompt_text,
        sample=_sample_dict(sample),
        initial_samples=initial,
        budget=budget,
        entropy_estimator=deps.sampler.entropy_estimator,
    )
    budget_tokens = min(config.rollout.max_response_tokens, config.model.max_model_len - len(prompt_ids))
    return GroupState(group, budget_tokens, awaiting_probe=branching_on and config.branching.dynamic_budget)


def _sample_dict(sample: PromptSample) -> dict[str, Any]:
    if hasattr(sample, "__dataclass_fields__"):
        return asdict(sample)  # type: ignore[call-overload, no-any-return]
    return {"messages": list(sample.messages)}


class _Loop:
    """One rollout call's scheduler: what is decoding, which tools run, and what each completion starts."""

    def __init__(
        self, config: RunConfig, deps: RolloutDeps, *, greedy: bool, branching_on: bool, schedule: Schedule
    ) -> None:
        self.config, self.deps, self.branching_on = config, deps, branching_on
        self.eager = schedule != "literal"
        self.temperature = 0.0 if greedy else config.rollout.temperature
        self.stops = deps.call_format.stop_strings(deps.tools)
        self.base_seed = deps.rng.getrandbits(64)
        self.decoding: dict[str, LivePath] = {}
        self.running_calls: dict[Future[tuple[ToolResult, float]], tuple[LivePath, ParsedCall]] = {}
        self.ready: list[tuple[str, GenResult]] = []
        """Segments of adopted requests sent ahead that had already ended: handled as if just finished."""
        self.counters = _Counters()
        sampler = deps.sampler
        ahead = (
            schedule == "ahead" and branching_on and sampler.continuous_batching and isinstance(sampler, AbortSampler)
        )
        self.ahead = Speculation(sampler, temperature=self.temperature, top_p=config.rollout.top_p) if ahead else None
        self._pool: ThreadPoolExecutor | None = None

    def run(self, states: Sequence[GroupState], initial: int) -> None:
        with ThreadPoolExecutor(max_workers=max(1, self.config.rollout.tool_concurrency)) as pool:
            self._pool = pool
            try:
                for state in states:
                    self._start(state, FIRST, 1 if state.awaiting_probe else initial, "initial")
                    self._settle(state)  # what is certain (or likely) from the start starts now
                while self.decoding or self.running_calls:
                    self._advance()
                if self.ahead is not None:
                    self.ahead.drop(self.ahead.pending_keys())  # nothing can want them any more
            except BaseException:
                self.deps.sampler.cancel()
                for future in self.running_calls:
                    future.cancel()
                raise

    def _advance(self) -> None:
        sampler = self.deps.sampler
        if self.ready:
            ready, self.ready = self.ready, []
            for key, result in ready:
                self._on_segment(self.decoding.pop(key), result)
        elif self.decoding and (sampler.continuous_batching or not self.running_calls):
            self.counters.sampler_steps += 1
            finished = sampler.step()
            for key, entropies in sampler.take_windows() if isinstance(sampler, WindowSampler) else ():
                self._on_window(self.decoding[key], entropies)
            for key, result in finished:
                if key in self.decoding:
                    self._on_segment(self.decoding.pop(key), result)
                elif self.ahead is None or not self.ahead.finished(key, result):
                    raise RuntimeError(f"the sampler returned {key!r}, which nobody asked for")
            self._collect_tools(None)
        elif sampler.continuous_batching:
            self._collect_tools(FIRST_COMPLETED)  # nothing to decode until a tool returns
        else:
            self._collect_tools(ALL_COMPLETED)  # a batch sampler gets every continuation in one batch

    def _collect_tools(self, wait_for: str | None) -> None:
        if not self.running_calls:
            return
        if wait_for is None:
            done = {f for f in self.running_calls if f.done()}
        else:
            waited = time.perf_counter()
            done = wait(self.running_calls, return_when=wait_for).done
            self.counters.tool_wait_seconds += time.perf_counter() - waited
        for future in [f for f in self.running_calls if f in done]:
            lv, parsed = self.running_calls.pop(future)
            result, latency_ms = future.result()
            self._on_tool_result(lv, parsed, result, latency_ms)

    def _on_segment(self, lv: LivePath, res: GenResult) -> None:
        self.counters.generated += len(res.token_ids)
        path, rc = lv.path, self.config.rollout
        eos = getattr(self.deps.sampler.tokenizer, "eos_token_id", None)
        call = paths.absorb_segment(
            path, res, self.deps.call_format, self.deps.tools, rc.max_tool_calls, eos_token_id=eos
        )
        lv.computed = len(lv.state.group.prompt_ids) + len(path.token_ids)
        t, lv.pending_tool = lv.pending_tool, None
        if self.branching_on:
            if len(path.segments) == 1 and path.origin != "fork":
                path.h_initial = window_entropy(
                    res.entropies[: self.config.branching.entropy_window],
                    self.deps.sampler.vocab_size,
                    self.config.branching.window_reduce,
                )
            if t is not None and res.token_ids:  # not decided on a streamed window already
                self._measure(lv, t, res.entropies)
        if call is not None:
            assert self._pool is not None
            if self.deps.observe is not None:
                self.deps.observe("tool_call", path, call)
            self.running_calls[self._pool.submit(paths.call_tool, call, self.deps.tools)] = (lv, call)
        else:
            del lv.state.live[lv.key]
        self._settle(lv.state)

    def _on_tool_result(self, lv: LivePath, parsed: ParsedCall, result: ToolResult, latency_ms: float) -> None:
        event = paths.append_result(
            lv.path,
            parsed,
            result,
            latency_ms,
            budget_tokens=lv.state.budget_tokens,
            max_chars=self.config.rollout.tool_result_max_chars,
            call_format=self.deps.call_format,
            tokenizer=self.deps.sampler.tokenizer,
        )
        lv.pending_tool = event.index
        if self.deps.observe is not None:
            self.deps.observe("tool_result", lv.path, event)
        if lv.path.finished:
            del lv.state.live[lv.key]
        else:
            self._submit(lv)
            self._send_forks_ahead(lv, event.index)
        self._settle(lv.state)

    def _on_window(self, lv: LivePath, entropies: list[float]) -> None:
        """The first k tokens after tool result t are decoded: decide at t now, while the segment goes on."""
        t, lv.pending_tool = lv.pending_tool, None
        assert t is not None, "a window is asked for only after a tool result"
        self._measure(lv, t, entropies)
        self._settle(lv.state)

    def _measure(self, lv: LivePath, t: int, entropies: Sequence[float]) -> None:
        """H_t from the first k tokens after tool result t, and the branch decision at t."""
        bc, path = self.config.branching, lv.path
        if path.h_initial is None:
            return
        h_t = window_entropy(entropies[: bc.entropy_window], self.deps.sampler.vocab_size, bc.window_reduce)
        draw = stable_uniform(self.base_seed, "branch", lv.state.group.prompt_index, lv.key, t)
        boundary = path.tool_calls[t - 1].result_end
        pending = DeferredDecision(lv, t, boundary, h_t, h_t - path.h_initial, draw, lv.depth)
        if bc.consecutive_penalty > 0:
            lv.state.deferred.append(pending)  # taken in _settle, once the earlier rounds are known
        else:
            self._decide(pending, consecutive=0)

    def _decide(self, pending: DeferredDecision, *, consecutive: int) -> None:
        lv, state = pending.parent, pending.parent.state
        decision = branching.decide(pending.delta, self.config.branching, consecutive=consecutive, draw=pending.draw)
        record = BranchDecision(
            pending.tool_index, pending.boundary, pending.h_t, pending.delta, decision.score, decision.draw,
            decision.forked,
        )  # fmt: skip
        lv.path.decisions.append(record)
        if not decision.forked or lv.supplement:
            self._drop_forks_ahead(lv, pending.tool_index, keep=0)
        if decision.forked and lv.supplement:
            state.supplement_rounds.add(pending.tool_index)  # recorded as the rule said, but no slot is left
        elif decision.forked:
            state.forked_rounds.add(pending.tool_index)
            state.claims.append(ForkClaim(lv, record, pending.depth))

    def _take_one_deferred(self, state: GroupState) -> bool:
        for pending in sorted(state.deferred, key=lambda d: d.priority):
            consecutive = consecutive_rounds(state, pending.tool_index, supplement=pending.parent.supplement)
            if consecutive is not None:
                state.deferred.remove(pending)
                self._decide(pending, consecutive=consecutive)
                return True
        return False

    def _settle(self, state: GroupState) -> None:
        """After any event in a group: take the decisions and grant the fork claims that can be, then
        start what is certain to be needed (the AEPO probe's N once the probe has ended, supplements)."""
        while self._take_one_deferred(state) or self._grant_one(state):
            pass
        if state.awaiting_probe and not state.live and not state.claims and not state.deferred:
            self._end_probe(state)
        if not state.awaiting_probe:
            self._supplement(state)

    def _grant_one(self, state: GroupState) -> bool:
        group = state.group
        live = [(lv.next_decision(), lv.key) for lv in state.live.values() if not lv.supplement]
        for claim in sorted(state.claims, key=lambda c: c.priority):
            n = grant(
                claim.priority,
                free=group.budget - len(group.paths),
                beam_width=self.config.branching.beam_width,
                live=live,
                # a decision still deferred may yet claim: count it like a claim that waits
                waiting=[c.priority for c in state.claims if c is not claim]
                + [d.priority for d in state.deferred if not d.parent.supplement],
            )
            if n is not None:
                state.claims.remove(claim)
                self._fork(state, claim, n)
                return True
        return False

    def _fork(self, state: GroupState, claim: ForkClaim, n: int) -> None:
        group, parent = state.group, claim.parent
        t, boundary = claim.record.tool_index, claim.record.boundary
        for j in range(n):
            path = paths.fork_path(parent.path, len(group.paths), boundary, t)
            claim.record.children.append(path.id)
            # The parent generated past the boundary, so the whole shared prefix is in the cache already.
            child = self._add(state, path, (*parent.key, t, j))
            child.computed = len(group.prompt_ids) + boundary
            child.depth = claim.depth
            self._submit(child)
        self._drop_forks_ahead(parent, t, keep=n)

    def _end_probe(self, state: GroupState) -> None:
        """AEPO dynamic budget: the probe path has ended; choose N from its entropies and start the rest."""
        group = state.group
        state.awaiting_probe = False
        probe = group.paths[0]
        h_tool = [d.h_t for d in probe.decisions]
        h_root = probe.h_initial or 0.0
        n = branching.dynamic_initial_samples(group.budget, h_root, sum(h_tool) / len(h_tool) if h_tool else h_root)
        group.initial_samples = n
        self._start(state, AEPO_EXTRA, max(0, min(n, group.budget) - len(group.paths)), "initial")

    def _supplement(self, state: GroupState) -> None:
        """Start the supplements that are certain: M minus the paths now minus all forking can still add.

        The algorithm adds M minus the paths there are once every path has ended (ARPO_SPEC.md §2 step 4).
        Supplement i samples the same whenever it starts (its seeds and draws are named by its key), and
        those certain ones never take a slot a fork could have had, so starting them early changes no tree.
        The `literal` schedule keeps the algorithm's order, for comparison.
        """
        group = state.group
        count = certain_supplements(
            state,
            beam_width=self.config.branching.beam_width,
            max_tool_calls=self.config.rollout.max_tool_calls,
            eager=self.eager,
        )
        if count > 0:
            first, group.supplements = group.supplements, group.supplements + count
            self._start(state, SUPPLEMENT, count, "supplement", first=first)
        if self.ahead is not None:
            self._send_supplements_ahead(state)

    def _start(self, state: GroupState, phase: int, count: int, origin: Origin, *, first: int = 0) -> None:
        """Start `count` fresh samples, logically after every segment their group has generated so far."""
        depth = state.branch_depth if origin == "supplement" else state.max_depth
        for i in range(first, first + count):
            lv = self._add(state, Path(id=len(state.group.paths), origin=origin), (phase, i))
            lv.depth = depth
            self._submit(lv)

    def _add(self, state: GroupState, path: Path, key: PathKey) -> LivePath:
        state.group.paths.append(path)
        state.keys.append(key)
        lv = LivePath(state, path, key)
        state.live[key] = lv
        return lv

    def _submit(self, lv: LivePath) -> None:
        state, path = lv.state, lv.path
        group = state.group
        context = group.prompt_ids + path.token_ids
        seed = stable_seed(self.base_seed, "sample", group.prompt_index, lv.key, lv.requests)
        # Ask for the window early where a decision, and so maybe a fork, waits on it.
        window = self.config.branching.entropy_window if self._decides_early(lv) else 0
        request = GenRequest(
            context, max_tokens=state.budget_tokens - len(path.token_ids), stop=self.stops, seed=seed, window=window
        )
        key = _request_key(group.prompt_index, lv.key, lv.requests)
        sent_ahead, result = self.ahead.adopt(key, request) if self.ahead is not None else (False, None)
        lv.requests += 1
        lv.depth += 1
        state.max_depth = max(state.max_depth, lv.depth)
        if not lv.supplement:
            state.branch_depth = max(state.branch_depth, lv.depth)
        self._count_prefill(lv, len(context))
        self.decoding[key] = lv
        if result is not None:
            self.ready.append((key, result))
        elif not sent_ahead:
            self.deps.sampler.submit(key, request, temperature=self.temperature, top_p=self.config.rollout.top_p)

    def _first_request(self, state: GroupState, key: PathKey, token_ids: Sequence[int]) -> tuple[str, GenRequest]:
        """The first request a path with this key and these response tokens will send (no window: a fresh
        sample or a fork has no decision pending)."""
        group = state.group
        seed = stable_seed(self.base_seed, "sample", group.prompt_index, key, 0)
        budget = state.budget_tokens - len(token_ids)
        request = GenRequest(group.prompt_ids + list(token_ids), max_tokens=budget, stop=self.stops, seed=seed)
        return _request_key(group.prompt_index, key, 0), request

    def _send_forks_ahead(self, lv: LivePath, t: int) -> None:
        """With the continuation after tool result t, the first segments of the forks its decision may grant."""
        state = lv.state
        if self.ahead is None or not self._decides_early(lv) or lv.path.h_initial is None:
            return
        free = state.group.budget - len(state.group.paths)
        for j in range(min(self.config.branching.beam_width - 1, free)):
            self.ahead.send(*self._first_request(state, (*lv.key, t, j), lv.path.token_ids))

    def _drop_forks_ahead(self, lv: LivePath, t: int, *, keep: int) -> None:
        if self.ahead is not None:
            index = lv.state.group.prompt_index
            self.ahead.drop(
                _request_key(index, (*lv.key, t, j), 0) for j in range(keep, self.config.branching.beam_width - 1)
            )

    def _send_supplements_ahead(self, state: GroupState) -> None:
        """Supplements likely to be needed start decoding now; those that can no longer be needed stop."""
        assert self.ahead is not None
        group = state.group
        likely = likely_supplements(
            state,
            beam_width=self.config.branching.beam_width,
            max_tool_calls=self.config.rollout.max_tool_calls,
            fork_probability=min(1.0, max(0.0, self.config.branching.alpha)),
        )
        for i in range(group.supplements, group.supplements + likely):
            self.ahead.send(*self._first_request(state, (SUPPLEMENT, i), []))
        most = group.budget - (len(group.paths) - group.supplements)  # forks only lower it
        self.ahead.drop(_request_key(group.prompt_index, (SUPPLEMENT, i), 0) for i in range(most, group.budget))

    def _decides_early(self, lv: LivePath) -> bool:
        # a supplement's decision gets no slot, so it can wait for its segment's end
        return self.eager and self.branching_on and lv.pending_tool is not None and not lv.supplement

    def _count_prefill(self, lv: LivePath, context_len: int) -> None:
        if lv.computed == 0 and lv.state.prompt_sent:
            lv.computed = len(lv.state.group.prompt_ids)  # a sibling has prefilled the same prompt
        lv.state.prompt_sent = True
        self.counters.requests += 1
        self.counters.prefill += context_len
        self.counters.prefill_new += context_len - lv.computed


def _request_key(prompt_index: int, key: PathKey, request: int) -> str:
    """The sampler key of a path's request: prompt, path key and the request's number along the path."""
    return f"{prompt_index}/{'.'.join(map(str, key))}/{request}"
