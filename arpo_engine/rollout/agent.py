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

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from arpo_engine.config import RunConfig
from arpo_engine.rollout import paths
from arpo_engine.rollout.group_state import GroupState
from arpo_engine.rollout.loop import Loop, RolloutDeps, Schedule
from arpo_engine.rollout.metrics import rollout_metrics
from arpo_engine.rollout.types import RolloutGroup

__all__ = ["PromptSample", "RolloutBatch", "RolloutDeps", "Schedule", "build_prompt_ids", "run_rollouts"]


class PromptSample(Protocol):
    """What the loop needs from a dataset row (arpo_engine.data.Sample satisfies it)."""

    @property
    def messages(self) -> Sequence[Mapping[str, Any]]: ...


@dataclass
class RolloutBatch:
    groups: list[RolloutGroup]
    metrics: dict[str, float]


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
    loop = Loop(config, deps, greedy=greedy, branching_on=branching_on, schedule=schedule)
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
