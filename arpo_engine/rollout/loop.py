"""The agent loop's scheduler: what is decoding, which tools run, and what each completion starts.

`run_rollouts` (agent.py) builds one `Loop` per call. The algorithm and the scheduling rules are
described there; this module is their event handling: a segment ends, a window of entropies arrives,
a tool returns, and the prompt's group settles what that allows (decisions, fork grants, supplements,
requests sent ahead).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Literal

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
from arpo_engine.rollout.sampler import GenRequest, GenResult, Sampler, WindowSampler
from arpo_engine.rollout.seeding import stable_seed, stable_uniform
from arpo_engine.rollout.speculation import SIDE_EFFECT_FREE_KINDS, AbortSampler, Speculation
from arpo_engine.rollout.types import BranchDecision, Origin, Path
from arpo_engine.tools.base import Tool, ToolResult

Schedule = Literal["literal", "eager", "ahead"]
"""When the loop starts what it starts (see the module docstring); never what is sampled."""

# Phases of fresh samples, the first part of their keys: ids are numbered phase by phase.
FIRST, AEPO_EXTRA, SUPPLEMENT = 0, 1, 2


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
class Counters:
    generated: int = 0
    prefill: int = 0
    prefill_new: int = 0
    requests: int = 0
    sampler_steps: int = 0
    tool_wait_seconds: float = 0.0


class Loop:
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
        self.counters = Counters()
        sampler = deps.sampler
        ahead = (
            schedule == "ahead" and branching_on and sampler.continuous_batching and isinstance(sampler, AbortSampler)
        )
        self.ahead = Speculation(sampler, temperature=self.temperature, top_p=config.rollout.top_p) if ahead else None
        # Supplements may also run their tool calls ahead where no tool has effects outside its sandbox,
        # no AEPO penalty counts their rounds and nobody watches calls live.
        self.shadows = (
            self.ahead is not None
            and {t.kind for t in config.tools} <= SIDE_EFFECT_FREE_KINDS
            and config.branching.consecutive_penalty == 0
            and deps.observe is None
        )
        self.dropped: set[str] = set()
        """Request keys of dropped shadows that the sampler may still return once."""
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
                if self.ahead is not None:  # nothing can want them any more
                    self.ahead.drop(self.ahead.pending_keys())
                    for state in states:
                        for lv in state.shadows.values():
                            self._drop_shadow(lv)
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
                elif key in self.dropped:
                    self.dropped.discard(key)  # ended in the step its shadow was dropped in
                    self._count_discarded(len(result.token_ids))
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
            if not lv.dropped:
                self._on_tool_result(lv, parsed, result, latency_ms)

    def _on_segment(self, lv: LivePath, res: GenResult) -> None:
        self._count(lv, generated=len(res.token_ids))
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
            lv.state.live.pop(lv.key, None)  # a shadow is not live until adopted
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
            lv.state.live.pop(lv.key, None)
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
            if self._adopt(state, (phase, i)):
                continue
            lv = self._add(state, Path(id=len(state.group.paths), origin=origin), (phase, i))
            lv.depth = depth
            self._submit(lv)

    def _add(self, state: GroupState, path: Path, key: PathKey) -> LivePath:
        state.group.paths.append(path)
        state.keys.append(key)
        lv = LivePath(state, path, key)
        state.live[key] = lv
        return lv

    def _adopt(self, state: GroupState, key: PathKey) -> bool:
        """A supplement that became certain and has been running as a shadow joins the tree as it is."""
        lv = state.shadows.pop(key, None)
        if lv is None:
            return False
        lv.shadow, lv.path.id = False, len(state.group.paths)
        state.group.paths.append(lv.path)
        state.keys.append(key)
        if not lv.path.finished:
            state.live[key] = lv
        generated, prefill, prefill_new, requests = lv.work
        self._count(lv, generated=generated, prefill=prefill, prefill_new=prefill_new, requests=requests)
        assert self.ahead is not None
        self.ahead.adopted += 1
        return True

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
        most = group.budget - (len(group.paths) - group.supplements)  # forks only lower it
        for i in range(group.supplements, group.supplements + likely):
            if not self.shadows:
                self.ahead.send(*self._first_request(state, (SUPPLEMENT, i), []))
            elif (SUPPLEMENT, i) not in state.shadows:
                lv = LivePath(state, Path(id=-1, origin="supplement"), (SUPPLEMENT, i), shadow=True)
                lv.depth = state.branch_depth
                state.shadows[lv.key] = lv
                self.ahead.sent += 1
                self._submit(lv)
        self.ahead.drop(_request_key(group.prompt_index, (SUPPLEMENT, i), 0) for i in range(most, group.budget))
        for key in [k for k in state.shadows if k[1] >= most]:
            self._drop_shadow(state.shadows.pop(key))

    def _drop_shadow(self, lv: LivePath) -> None:
        """A shadow that can no longer be needed: stop its request; a tool call of it is ignored when back."""
        lv.dropped = True
        keys = [key for key, other in self.decoding.items() if other is lv]
        for key in keys:
            del self.decoding[key]
        self.ready = [(key, res) for key, res in self.ready if key not in keys]
        if keys:
            self.deps.sampler.abort(keys)  # type: ignore[attr-defined]
            self.dropped.update(keys)
        self._count_discarded(lv.work[0])

    def _count_discarded(self, tokens: int) -> None:
        assert self.ahead is not None
        self.ahead.discarded_tokens += tokens

    def _decides_early(self, lv: LivePath) -> bool:
        # a supplement's decision gets no slot, so it can wait for its segment's end
        return self.eager and self.branching_on and lv.pending_tool is not None and not lv.supplement

    def _count_prefill(self, lv: LivePath, context_len: int) -> None:
        if lv.computed == 0 and lv.state.prompt_sent:
            lv.computed = len(lv.state.group.prompt_ids)  # a sibling has prefilled the same prompt
        lv.state.prompt_sent = True
        self._count(lv, prefill=context_len, prefill_new=context_len - lv.computed, requests=1)

    def _count(
        self, lv: LivePath, *, generated: int = 0, prefill: int = 0, prefill_new: int = 0, requests: int = 0
    ) -> None:
        """Work of the tree; a shadow's waits on the path until it is adopted."""
        if lv.shadow:
            for i, n in enumerate((generated, prefill, prefill_new, requests)):
                lv.work[i] += n
            return
        c = self.counters
        c.generated += generated
        c.prefill += prefill
        c.prefill_new += prefill_new
        c.requests += requests


def _request_key(prompt_index: int, key: PathKey, request: int) -> str:
    """The sampler key of a path's request: prompt, path key and the request's number along the path."""
    return f"{prompt_index}/{'.'.join(map(str, key))}/{request}"
