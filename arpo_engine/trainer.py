"""The ARPO training loop: rollout -> reward -> advantage -> update -> sync -> eval -> checkpoint.

`train(config, deps, ...)` reads like the paper (ARPO_SPEC.md §2-5). Everything that varies is injected
through `TrainDeps`: the rollouts (a sampler and tools in this process, or sampler actors), learner, reward
function, metrics sink, checkpointer, random generator and a stop flag that is checked between phases.
Each phase is timed; the metrics dict uses the vocabulary of PRODUCT.md.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from arpo_engine.advantages import GroupAdvantages, advantage_metrics, attribute_advantages
from arpo_engine.config import RunConfig
from arpo_engine.data import Sample
from arpo_engine.learner import TrainSequence
from arpo_engine.rewards import get_scorer
from arpo_engine.rewards.base import RewardResult, Scorer, score_path
from arpo_engine.rollout.agent import RolloutBatch, RolloutDeps, run_rollouts
from arpo_engine.rollout.formats import CallFormat
from arpo_engine.rollout.sampler import Sampler
from arpo_engine.rollout.types import RolloutGroup
from arpo_engine.tools.base import Tool

MetricsSink = Callable[[int, dict[str, float]], None]
RolloutFn = Callable[[Sequence[Sample], random.Random, bool, int], RolloutBatch]
"""(prompts, rng, greedy, index of the first prompt) -> their rollout groups. Where rollouts run: a sampler in
this process (`local_rollouts`) or sampler actors on a Ray cluster (`arpo_engine.distributed`)."""


class PolicyLearner(Protocol):
    """What the loop needs from a learner: `arpo_engine.learner.Learner`, or the distributed driver's handle."""

    def update(self, batch: Sequence[TrainSequence]) -> dict[str, float]: ...


def local_rollouts(
    config: RunConfig, sampler: Sampler, tools: Mapping[str, Tool], call_format: CallFormat
) -> RolloutFn:
    """Rollouts on `sampler` in this process, with the tools running here."""

    def rollouts(samples: Sequence[Sample], rng: random.Random, greedy: bool, first_index: int) -> RolloutBatch:
        deps = RolloutDeps(sampler, tools, call_format, rng)
        return run_rollouts(samples, config, deps, greedy=greedy, first_index=first_index)

    return rollouts


@dataclass
class DataCursor:
    """Position in the training prompts, seeded per epoch, so a resumed run sees the same order."""

    size: int
    seed: int
    shuffle: bool = True
    epoch: int = 0
    index: int = 0

    def order(self) -> list[int]:
        order = list(range(self.size))
        if self.shuffle:
            random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        return order

    def take(self, n: int) -> list[int]:
        picked: list[int] = []
        while len(picked) < n:
            order = self.order()
            if self.index >= self.size:
                self.epoch, self.index = self.epoch + 1, 0
                continue
            want = min(n - len(picked), self.size - self.index)
            picked.extend(order[self.index : self.index + want])
            self.index += want
        return picked

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}

    def restore(self, state: Mapping[str, int]) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])


@dataclass
class TrainDeps:
    rollouts: RolloutFn
    """Samples the policy: `local_rollouts(config, sampler, tools, call_format)`, or sampler actors."""
    learner: PolicyLearner
    scorer: Scorer
    rng: random.Random
    sync_weights: Callable[[], int] = lambda: 0
    """Push the learner's weights into the sampler; returns the tensors pushed (0 when both share one model)."""
    release_sampler_memory: Callable[[], int] = lambda: 0
    """Before the update: free what the sampler needs neither for it nor for `sync_weights` (on the CPU, vLLM's
    KV cache, which its next request takes back, and its weights, which the sync reloads), so the update's
    peak does not stack on them. Returns the bytes released."""
    sink: MetricsSink = lambda step, metrics: None
    on_rollout: Callable[[int, RolloutBatch, list[list[RewardResult]]], None] | None = None
    """Receives each step's rollout trees and rewards (the dashboard's live rollouts)."""
    checkpoint: Callable[[int, dict[str, float], DataCursor], None] | None = None
    should_stop: Callable[[], bool] = lambda: False
    on_phase: Callable[[str], None] = lambda phase: None
    """What the run is doing now, for the dashboard: `evaluating` (held-out eval) or `training` (a step)."""


@dataclass
class TrainResult:
    steps_done: int
    history: list[dict[str, float]] = field(default_factory=list)
    stopped: bool = False


def score_groups(
    groups: Sequence[RolloutGroup], scorer: Scorer, config: RunConfig
) -> list[list[RewardResult]]:
    """One RewardResult per path, aligned with each group's paths."""
    kinds = {t.name: t.kind for t in config.tools}
    fmt = config.rollout.call_format
    return [
        [score_path(scorer, p, list(g.sample.get("answers") or []), tool_kinds=kinds, call_format=fmt) for p in g.paths]
        for g in groups
    ]


def make_scorer(config: RunConfig) -> Scorer:
    r = config.reward
    if r.scorer == "python":
        return get_scorer("python", source=r.python_source, timeout_s=r.timeout_s)
    return get_scorer(r.scorer)


def reward_metrics(rewards: Sequence[Sequence[RewardResult]]) -> dict[str, float]:
    """`accuracy`: the answer is right (the scorer's correctness part), whatever the format penalty did;
    `format/ok_frac`: the response follows the format rules (PRODUCT.md keeps the two apart)."""
    scores = [r.score for group in rewards for r in group]
    correct = [1.0 if r.details.get("correct") else 0.0 for group in rewards for r in group]
    format_ok = [1.0 if r.details.get("format_ok") else 0.0 for group in rewards for r in group]
    return {
        "reward/mean": statistics.fmean(scores) if scores else 0.0,
        "reward/std": statistics.pstdev(scores) if len(scores) > 1 else 0.0,
        "accuracy": statistics.fmean(correct) if correct else 0.0,
        "format/ok_frac": statistics.fmean(format_ok) if format_ok else 0.0,
    }


def build_sequences(
    groups: Sequence[RolloutGroup], advantages: Sequence[GroupAdvantages], *, keep_degenerate: bool = True
) -> list[TrainSequence]:
    """Flatten paths into learner sequences.

    Degenerate groups (all rewards equal) stay by default, at zero advantage (ARPO_SPEC.md §4, as verl):
    their tokens still count in the token-mean denominator and their prompts in the mini-batches, so
    the number of optimizer updates per step does not depend on how many groups happened to tie.
    """
    out = []
    for group, adv in zip(groups, advantages, strict=True):
        if adv.degenerate and not keep_degenerate:
            continue
        for path, token_adv in zip(group.paths, adv.token_advantages, strict=True):
            if path.token_ids:
                out.append(
                    TrainSequence(group.prompt_index, group.prompt_ids, path.token_ids, path.mask, token_adv)
                )
    return out


def evaluate(
    samples: Sequence[Sample], config: RunConfig, deps: TrainDeps
) -> dict[str, float]:
    """Greedy, unbranched, one path per held-out prompt."""
    if not samples:
        return {}
    return eval_metrics(deps.rollouts(samples, random.Random(config.seed), True, 0), deps.scorer, config)


def evaluate_policy(
    samples: Sequence[Sample],
    config: RunConfig,
    sampler: Sampler,
    tools: Mapping[str, Tool],
    call_format: CallFormat,
    scorer: Scorer,
) -> tuple[dict[str, float], RolloutBatch]:
    """Greedy, unbranched, one path per prompt: eval metrics and the trajectories they came from."""
    if not samples:
        return {}, RolloutBatch([], {})
    batch = local_rollouts(config, sampler, tools, call_format)(samples, random.Random(config.seed), True, 0)
    return eval_metrics(batch, scorer, config), batch


def eval_metrics(batch: RolloutBatch, scorer: Scorer, config: RunConfig) -> dict[str, float]:
    """The `eval/` metrics of a greedy rollout batch."""
    rewards = score_groups(batch.groups, scorer, config)
    m = reward_metrics(rewards)
    lengths = [len(p.token_ids) for g in batch.groups for p in g.paths]
    return {
        "eval/accuracy": m["accuracy"],
        "eval/format_ok": m["format/ok_frac"],
        "eval/reward_mean": m["reward/mean"],
        "eval/tool_calls_per_traj": batch.metrics["tools/calls_per_traj"],
        "eval/response_tokens_mean": statistics.fmean(lengths) if lengths else 0.0,
    }


def train(
    config: RunConfig,
    deps: TrainDeps,
    train_samples: Sequence[Sample],
    eval_samples: Sequence[Sample] = (),
    *,
    start_step: int = 0,
    cursor: DataCursor | None = None,
) -> TrainResult:
    cursor = cursor or DataCursor(len(train_samples), config.seed, config.data.shuffle)
    tc = config.train
    result = TrainResult(steps_done=start_step)
    if start_step == 0 and tc.eval_every and tc.eval_at_start and eval_samples:
        deps.on_phase("evaluating")
        deps.sink(0, evaluate(_eval_slice(eval_samples, config), config, deps))
    for step in range(start_step + 1, tc.steps + 1):
        if deps.should_stop():
            result.stopped = True
            break
        deps.on_phase("training")
        metrics = train_step(step, config, deps, train_samples, cursor)
        if deps.should_stop():
            result.stopped = True
            break
        if tc.eval_every and eval_samples and (step % tc.eval_every == 0 or step == tc.steps):
            deps.on_phase("evaluating")
            started = time.perf_counter()
            metrics.update(evaluate(_eval_slice(eval_samples, config), config, deps))
            metrics["time/eval_s"] = time.perf_counter() - started
        if deps.checkpoint and (step % config.checkpoint.every_steps == 0 or step == tc.steps):
            started = time.perf_counter()
            deps.checkpoint(step, metrics, cursor)
            metrics["time/checkpoint_s"] = time.perf_counter() - started
        deps.sink(step, metrics)
        result.history.append(metrics)
        result.steps_done = step
    return result


def _eval_slice(samples: Sequence[Sample], config: RunConfig) -> Sequence[Sample]:
    n = config.train.eval_prompts
    return samples[:n] if n else samples


def train_step(
    step: int, config: RunConfig, deps: TrainDeps, train_samples: Sequence[Sample], cursor: DataCursor
) -> dict[str, float]:
    started = time.perf_counter()
    picked = cursor.take(min(config.optim.train_batch_prompts, len(train_samples)))
    prompts = [train_samples[i] for i in picked]

    batch = deps.rollouts(prompts, deps.rng, False, (step - 1) * len(prompts))

    t = time.perf_counter()
    rewards = score_groups(batch.groups, deps.scorer, config)
    reward_s = time.perf_counter() - t
    if deps.on_rollout is not None:
        deps.on_rollout(step, batch, rewards)

    advantages = [
        attribute_advantages(g, [r.score for r in rs], estimator=config.algorithm.advantage)
        for g, rs in zip(batch.groups, rewards, strict=True)
    ]
    keep = config.algorithm.degenerate_groups == "keep"
    sequences = build_sequences(batch.groups, advantages, keep_degenerate=keep)
    learner_metrics: dict[str, float] = {}
    released = 0
    if sequences:
        released = deps.release_sampler_memory()
        learner_metrics = deps.learner.update(sequences)

    t = time.perf_counter()
    synced = deps.sync_weights() if sequences else 0
    sync_s = time.perf_counter() - t

    metrics = {
        **reward_metrics(rewards),
        **advantage_metrics(advantages),
        **batch.metrics,
        **learner_metrics,
        "time/reward_s": reward_s,
        "time/sync_s": sync_s,
        "sync/tensors": float(synced),
        "memory/sampler_released_mb": released / (1 << 20),
        "train/sequences": float(len(sequences)),
    }
    metrics["time/step_s"] = time.perf_counter() - started
    return metrics
