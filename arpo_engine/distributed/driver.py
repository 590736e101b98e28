"""The distributed driver: the same training loop (`trainer.train`), its stages run by Ray actors.

`run_distributed_training` is what `pipeline.run_training` calls for a config with `distributed.samplers`
> 1 or `distributed.separate_learner`. It reserves one placement group for the run (placement.py),
puts a `LearnerWorker` in bundle 0 and a `SamplerWorker` in each other bundle (actors.py), and hands
`trainer.train` a `Fleet`: its `rollouts` spread the step's prompts over the samplers (shards.py), its
`update` runs the learner, its `sync` publishes the learner's weights once into Ray's object store and
has every sampler load them (or broadcasts them over a collective group, collective.py). Scoring,
advantages, metrics, the data cursor and the rollout generator stay in the driver, exactly as in one
process, so for the same seed the run matches the in-process one.

Policy versions: the learner's version counts its updates (from the step the run resumed at). Before
each rollout the driver asks every sampler for the version it holds and refuses to start unless all
hold the learner's; each piece of the rollout comes back stamped with its version and is checked again.

A lost actor (its process or node died) ends the attempt: the driver removes the placement group,
re-reads the last checkpoint, places the actors again and resumes, up to `distributed.max_restarts` times.
The SFT cold start, when the config asks for one, runs in the learner actor. Checkpoints are written by
the learner, so `checkpoint.dir` must be storage every node shares (one machine, NFS, a volume claim).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from arpo_engine.config import ConfigError, RunConfig
from arpo_engine.distributed.actors import LearnerWorker, SamplerWorker
from arpo_engine.distributed.placement import (
    Placement,
    actor_options,
    never_fits,
    plan_bundles,
    reserve,
    reserved_total,
    role_memory,
)
from arpo_engine.distributed.shards import check_versions, merge_shards, shard_bounds

Log = Callable[[str], None]


def lost_actor_errors() -> tuple[type[BaseException], ...]:
    """What Ray raises when an actor, its node or an object it held is gone: the run resumes elsewhere."""
    from ray.exceptions import ActorPlacementGroupRemoved, NodeDiedError, ObjectLostError, RayActorError

    return (RayActorError, ObjectLostError, NodeDiedError, ActorPlacementGroupRemoved)


class Fleet:
    """A run's actors on Ray: a learner and N samplers in one placement group, and the policy version they hold.

    `rollouts` is the loop's RolloutFn, `update` makes it a PolicyLearner, `sync` its weight sync.
    """

    def __init__(self, config: RunConfig, run_id: str, placement: Placement) -> None:
        self.config = config
        self.run_id = run_id
        self.placement = placement
        self.group: Any = None
        self.bundles: list[dict[str, float]] = []
        self.learner: Any = None
        self.samplers: list[Any] = []
        self.version = 0
        """The learner's policy version: what every sampler must hold before a rollout."""
        self.layout: Any = None
        """The broadcast layout once the actors joined a collective group (`weight_sync: collective`)."""
        self.sync_seconds: list[float] = []

    # --- placing ----------------------------------------------------------------------------------------

    def reserve(self, *, log: Log, should_stop: Callable[[], bool]) -> bool:
        """Reserve the bundles and start the learner actor; False when stopped while waiting for room."""
        import ray

        memory = None
        if self.placement.request_memory:
            try:
                memory = role_memory(self.config)
            except (OSError, ValueError, KeyError) as exc:  # the model folder is not readable from here
                log(f"no memory estimate for the run's actors ({exc}); Ray places them without a memory request")
        cluster = ray.cluster_resources()
        self.bundles = plan_bundles(self.config, cluster, memory=memory)
        if self.placement.fixed_cluster and (short := never_fits(self.bundles, cluster)):
            raise ConfigError(
                f"distributed: the run's actors ask for {short}; lower distributed.samplers or their CPUs and "
                "GPUs, or run it on a Ray cluster (RAY_ADDRESS)"
            )
        self.group = reserve(self.bundles, should_stop=should_stop, log=log, wait_log_s=self.placement.wait_log_s)
        if self.group is None:
            return False
        if self.placement.on_placed is not None:
            self.placement.on_placed(reserved_total(self.bundles))
        options = self._options(0)
        options["max_concurrency"] = 2  # the cold start's progress is read while it runs
        self.learner = ray.remote(LearnerWorker).options(**options).remote(self.config.to_dict(), self.run_id)
        return True

    def start_samplers(
        self, model_path: Path, *, version: int, tool_secrets: Mapping[str, Mapping[str, str]] | None = None
    ) -> list[dict[str, Any]]:
        """One sampler actor per sampler bundle, on `model_path` at `version`; returns where each runs."""
        import ray

        config = self.config.to_dict()
        self.samplers = [
            ray.remote(SamplerWorker)
            .options(**self._options(i + 1))
            .remote(i, config, str(model_path), version=version, tool_secrets=tool_secrets)
            for i in range(self.config.distributed.samplers)
        ]
        return list(ray.get([s.describe.remote() for s in self.samplers]))

    def join_group(self) -> None:
        """Learner and samplers join one torch.distributed group: NCCL when both have GPUs, else gloo."""
        import ray

        from arpo_engine.distributed.collective import backend_for

        d = self.config.distributed
        backend = backend_for(d.learner_gpus, d.sampler_gpus)
        address = ray.get(self.learner.group_address.remote())
        world = len(self.samplers) + 1
        joins = [self.learner.join_group.remote(address, world, backend)]
        joins += [s.join_group.remote(address, world, backend) for s in self.samplers]
        self.layout = _get_all(joins)[0]

    def _options(self, index: int) -> dict[str, Any]:
        options = actor_options(self.bundles[index], self.group, index)
        if self.placement.runtime_env is not None:
            options["runtime_env"] = dict(self.placement.runtime_env)
        return options

    def shutdown(self) -> None:
        import ray
        from ray.util.placement_group import remove_placement_group

        for actor in [*self.samplers, self.learner]:
            if actor is not None:
                with contextlib.suppress(Exception):  # already gone with its node
                    ray.kill(actor, no_restart=True)
        if self.group is not None:
            with contextlib.suppress(Exception):
                remove_placement_group(self.group)
        self.samplers, self.learner, self.group = [], None, None

    # --- the loop's stages ------------------------------------------------------------------------------

    def versions(self) -> list[int]:
        import ray

        return list(ray.get([s.policy_version.remote() for s in self.samplers]))

    def rollouts(self, samples: Sequence[Any], rng: Any, greedy: bool, first_index: int) -> Any:
        """Each sampler rolls out a contiguous slice of the prompts from the same generator state."""
        import ray

        started = time.perf_counter()
        check_versions(self.versions(), self.version, what="before a rollout")
        state = rng.getstate()
        bounds = shard_bounds(len(samples), len(self.samplers))
        refs = [
            sampler.rollout.remote(list(samples[a:b]), first_index + a, state, greedy, self.version)
            for sampler, (a, b) in zip(self.samplers, bounds, strict=True)
            if b > a
        ]
        shards = ray.get(refs)
        if shards:
            rng.setstate(shards[0].rng_state)  # the driver's generator moves on as the samplers' did
        return merge_shards(shards, expected_version=self.version, rollout_seconds=time.perf_counter() - started)

    def update(self, batch: Sequence[Any]) -> dict[str, float]:
        import ray

        metrics: dict[str, float] = ray.get(self.learner.update.remote(list(batch)))
        self.version += 1
        return metrics

    def sync(self) -> int:
        """Learner -> every sampler, through the object store (published once, loaded by each) or by a
        collective broadcast; returns the tensors each sampler loaded."""
        started = time.perf_counter()
        if self.layout is not None:
            calls = [self.learner.broadcast_weights.remote(self.layout)]
            calls += [s.receive_weights.remote(self.layout) for s in self.samplers]
            replies = _get_all(calls)[1:]
        else:
            payload = self.learner.publish.remote()  # the reply is one object in the store; the driver never reads it
            replies = _get_all([s.load_weights.remote(payload) for s in self.samplers])
        check_versions([version for version, _ in replies], self.version, what="after the weight sync")
        self.sync_seconds.append(time.perf_counter() - started)
        return int(replies[0][1]) if replies else 0

    def save(self, step: int, metrics: Mapping[str, float], rng: Any, position: tuple[int, int], agent: Any) -> str:
        import ray

        return str(ray.get(self.learner.save.remote(step, dict(metrics), rng.getstate(), position, agent)))

    def cold_start(
        self, out_dir: Path, *, log: Log, should_stop: Callable[[], bool], sft_sink: Callable[..., None] | None
    ) -> None:
        """The SFT cold start in the learner actor; its log lines and progress reach `log` and `sft_sink`."""
        import ray

        done = self.learner.cold_start.remote(str(out_dir))
        seen, stop_sent = 0, False
        while True:
            finished = bool(ray.wait([done], timeout=0.5)[0])
            for kind, value in ray.get(self.learner.notes.remote(seen)):
                seen += 1
                if kind == "log":
                    log(value)
                elif sft_sink is not None:
                    sft_sink(*value)
            if finished:
                ray.get(done)
                return
            if should_stop() and not stop_sent:
                self.learner.request_stop.remote()
                stop_sent = True


def _get_all(refs: list[Any]) -> list[Any]:
    """Every call's reply, raising as soon as one fails (a rank left waiting in a collective never answers)."""
    import ray

    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        ray.get(ready)
    return list(ray.get(refs))


def run_distributed_training(
    config: RunConfig,
    *,
    run_id: str | None = None,
    log: Log = print,
    sink: Callable[[int, dict[str, float]], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_rollout: Callable[..., None] | None = None,
    tool_secrets: Mapping[str, Mapping[str, str]] | None = None,
    sft_sink: Callable[[int, dict[str, float]], None] | None = None,
    placement: Placement | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> Any:
    """`pipeline.run_training` on Ray actors; the same arguments, plus how to place the actors.

    Uses the Ray cluster this process is connected to, else the one RAY_ADDRESS names, else starts a local one.
    """
    import ray

    from arpo_engine.pipeline import plan_run

    placement = placement or Placement()
    if not ray.is_initialized():  # the CLI: the cluster RAY_ADDRESS names, else a Ray of this process
        address = os.environ.get("RAY_ADDRESS") or "local"
        ray.init(address=address)
        if address == "local":
            placement = dataclasses.replace(placement, fixed_cluster=True)
    name = run_id or config.name
    plan = plan_run(config, run_id=name, tool_secrets=tool_secrets)
    restarts = 0
    while True:
        fleet = Fleet(config, name, placement)
        try:
            return _attempt(fleet, plan, log=log, sink=sink, should_stop=should_stop, on_rollout=on_rollout,
                            tool_secrets=tool_secrets, sft_sink=sft_sink, on_phase=on_phase)  # fmt: skip
        except lost_actor_errors() as exc:
            if restarts >= config.distributed.max_restarts:
                raise
            restarts += 1
            log(
                f"lost an actor ({type(exc).__name__}); placing the run again and resuming from its last "
                f"checkpoint (restart {restarts} of {config.distributed.max_restarts})"
            )
            plan.point = plan.manager.resume_point()
        finally:
            fleet.shutdown()


def _attempt(
    fleet: Fleet,
    plan: Any,
    *,
    log: Log,
    sink: Callable[[int, dict[str, float]], None] | None,
    should_stop: Callable[[], bool],
    on_rollout: Callable[..., None] | None,
    tool_secrets: Mapping[str, Mapping[str, str]] | None,
    sft_sink: Callable[[int, dict[str, float]], None] | None,
    on_phase: Callable[[str], None] | None = None,
) -> Any:
    import ray

    from arpo_engine.agent_spec import build_agent_spec
    from arpo_engine.pipeline import policy_path, seeded_rng
    from arpo_engine.rollout.formats import get_format
    from arpo_engine.trainer import DataCursor, TrainDeps, TrainResult, train

    config, point = fleet.config, plan.point
    start_step = point.step if point is not None else 0
    if not fleet.reserve(log=log, should_stop=should_stop):
        return TrainResult(steps_done=start_step, stopped=True)
    if plan.needs_sft:
        fleet.cold_start(plan.start_path, log=log, should_stop=should_stop, sft_sink=sft_sink)
    model_path = policy_path(config, plan)
    if point is not None:
        log(f"resuming from {point.model_dir} (step {point.step})")
    resumed = ray.get(
        fleet.learner.load.remote(
            str(model_path), str(plan.start_path), resume_step=point.step if point else None, version=start_step
        )
    )
    fleet.version = start_step
    # A LoRA run's samplers start from the base weights: they hold no known version until the first sync.
    lora_resume = point is not None and config.optim.lora_rank > 0
    where = fleet.start_samplers(model_path, version=-1 if lora_resume else start_step, tool_secrets=tool_secrets)
    learner_node = ray.get(fleet.learner.describe.remote())["node"]
    log(
        f"placed on Ray: the learner on node {learner_node[:12]}, {len(where)} sampler(s) on node(s) "
        f"{', '.join(w['node'][:12] for w in where)}"
    )
    rng = seeded_rng(config)
    cursor = DataCursor(len(plan.train_samples), config.seed, config.data.shuffle)
    if resumed["rollout_rng"] is not None:
        rng.setstate(resumed["rollout_rng"])
    if resumed["data_position"] is not None:
        epoch, index = resumed["data_position"]
        cursor.restore({"epoch": epoch, "index": index})
    if config.distributed.weight_sync == "collective":
        fleet.join_group()
    if lora_resume:
        fleet.sync()
    agent = build_agent_spec(config, plan.tools, get_format(config.rollout.call_format, plan.tokenizer))

    def checkpoint(step: int, metrics: dict[str, float], cur: DataCursor) -> None:
        log(f"checkpoint saved: {fleet.save(step, metrics, rng, (cur.epoch, cur.index), agent)}")

    deps = TrainDeps(
        rollouts=fleet.rollouts,
        learner=fleet,
        scorer=plan.scorer,
        rng=rng,
        sync_weights=fleet.sync,
        sink=sink or (lambda step, metrics: None),
        on_rollout=on_rollout,
        checkpoint=checkpoint,
        should_stop=should_stop,
        on_phase=on_phase or (lambda phase: None),
    )
    return train(config, deps, plan.train_samples, plan.eval_samples, start_step=start_step, cursor=cursor)
