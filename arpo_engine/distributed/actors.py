"""The bodies of the run's Ray actors: thin shells around the engine's own Sampler and Learner.

Nothing of the algorithm lives here. `SamplerWorker` holds a sampler built as the in-process run builds
it (`pipeline.make_policy_sampler`) plus the tools, and rolls out a slice of prompts with the same agent
loop (`trainer.local_rollouts`). `LearnerWorker` holds an `arpo_engine.learner.Learner` and the run's
`CheckpointManager`. Both are plain classes: the driver wraps them with `ray.remote` when it places
them, and a test can drive them in-process. Each sampler knows the policy version it holds (learner
updates applied to its weights) and refuses a rollout asked for at another version.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from arpo_engine.config import RunConfig
from arpo_engine.distributed.shards import Shard, check_versions
from arpo_engine.distributed.weights import WeightsPayload, pack


def _node_id() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id()) if ray.is_initialized() else ""


class SamplerWorker:
    """One sampler and the run's tools, on its node."""

    def __init__(
        self,
        index: int,
        config: Mapping[str, Any],
        model_path: str,
        *,
        version: int,
        tool_secrets: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        from arpo_engine.pipeline import make_policy_sampler
        from arpo_engine.rollout.formats import get_format
        from arpo_engine.tools.registry import build_tools
        from arpo_engine.trainer import local_rollouts

        run_config = RunConfig.from_dict(config)
        self.index = index
        self.version = version
        self.sampler, _ = make_policy_sampler(run_config, Path(model_path))
        tools = build_tools(run_config.tools, secrets=tool_secrets)
        call_format = get_format(run_config.rollout.call_format, self.sampler.tokenizer)
        self._rollouts = local_rollouts(run_config, self.sampler, tools, call_format)

    def describe(self) -> dict[str, Any]:
        """Where it runs and what it holds (answered once the actor is up)."""
        return {"index": self.index, "version": self.version, "node": _node_id()}

    def policy_version(self) -> int:
        return self.version

    def rollout(self, samples: Sequence[Any], first_index: int, rng_state: Any, greedy: bool, version: int) -> Shard:
        """Roll out `samples` (prompt indices from `first_index`) from the driver's generator state."""
        check_versions([self.version], version, what=f"sampler {self.index} asked for a rollout")
        rng = random.Random()
        rng.setstate(rng_state)
        batch = self._rollouts(samples, rng, greedy, first_index)
        return Shard(self.index, self.version, batch, rng.getstate())

    def load_weights(self, payload: WeightsPayload) -> tuple[int, int]:
        """Copy the learner's published weights in; returns (the version now held, tensors loaded)."""
        self.sampler.update_weights(payload.tensors())
        self.version = payload.version
        return self.version, len(payload)

    def join_group(self, address: str, world: int, backend: str) -> None:
        """Join the run's collective group (`distributed.weight_sync: collective`) as rank index + 1."""
        from arpo_engine.distributed import collective

        collective.join(address, self.index + 1, world, backend)
        self._backend = backend

    def receive_weights(self, layout: Any) -> tuple[int, int]:
        """The learner's broadcast: its version and weights; returns (the version now held, tensors loaded)."""
        from arpo_engine.distributed import collective

        version, weights = collective.receive(layout, collective.device_for(self._backend))
        self.sampler.update_weights(weights.items())
        self.version = version
        return self.version, len(weights)

    def close(self) -> None:
        self.sampler.close()


class LearnerWorker:
    """The learner on its node: the SFT cold start, updates, the weights it publishes, and checkpoints.

    Run as a threaded actor (two calls at once), so the driver can read the cold start's progress and ask
    it to stop while it runs.
    """

    def __init__(self, config: Mapping[str, Any], run_id: str) -> None:
        from arpo_engine.checkpoint import CheckpointManager

        self.config = RunConfig.from_dict(config)
        self.manager = CheckpointManager.from_config(self.config, run_id)
        self.version = 0
        self._learner: Any = None
        self._tokenizer: Any = None
        self._stop = threading.Event()
        self._notes: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"version": self.version, "node": _node_id()}

    # --- the SFT cold start ----------------------------------------------------------------------------

    def cold_start(self, out_dir: str) -> str:
        from arpo_engine.pipeline import run_sft_stage

        run_sft_stage(
            self.config,
            Path(out_dir),
            log=lambda line: self._note("log", line),
            should_stop=self._stop.is_set,
            on_progress=lambda update, metrics: self._note("sft", (update, metrics)),
        )
        return out_dir

    def notes(self, after: int) -> list[tuple[str, Any]]:
        """The cold start's log lines and progress records after the first `after` of them."""
        with self._lock:
            return self._notes[after:]

    def request_stop(self) -> None:
        self._stop.set()

    def _note(self, kind: str, value: Any) -> None:
        with self._lock:
            self._notes.append((kind, value))

    # --- training ---------------------------------------------------------------------------------------

    def load(self, model_path: str, start_path: str, *, resume_step: int | None, version: int) -> dict[str, Any]:
        """Load the policy as `pipeline.run_training` does; at a resume point also the adapters, the optimizer
        and torch's generator. Returns what the driver restores: the rollout generator's state and the data
        position (None for a fresh start)."""
        from arpo_engine.checkpoint import restore_optimizer, restore_rng
        from arpo_engine.learner import Learner
        from arpo_engine.lora import load_adapter
        from arpo_engine.pipeline import load_policy, load_reference

        config = self.config
        model, self._tokenizer = load_policy(model_path)
        self._learner = Learner(
            model,
            optim=config.optim,
            algorithm=config.algorithm,
            pad_token_id=self._tokenizer.pad_token_id or self._tokenizer.eos_token_id,
            ref_model=load_reference(config, Path(start_path)),
            temperature=config.rollout.temperature or 1.0,
            seed=config.seed,
        )
        self.version = version
        if resume_step is None:
            return {"rollout_rng": None, "data_position": None}
        state = self.manager.resume()
        if state is None or state.step != resume_step:
            raise RuntimeError(f"the learner found no resume point at step {resume_step} in {self.manager.run_dir}")
        if config.optim.lora_rank:
            load_adapter(model, state.point.resume_dir)
        restore_optimizer(self._learner.optimizer, state)
        restore_rng({}, state)  # torch's global generator, as the in-process run restores it
        position = state.data_position
        return {
            "rollout_rng": state.rng.python_states.get("rollout"),
            "data_position": (position.epoch, position.index) if position is not None else None,
        }

    def update(self, batch: Sequence[Any]) -> dict[str, float]:
        metrics = self._learner.update(batch)
        self.version += 1
        return metrics

    def publish(self) -> WeightsPayload:
        """The current weights for the samplers (returned into the object store once, read by each of them)."""
        from arpo_engine.lora import merged_state_dict

        return pack(self.version, merged_state_dict(self._learner.model))

    def group_address(self) -> str:
        from arpo_engine.distributed import collective

        return collective.free_address()

    def join_group(self, address: str, world: int, backend: str) -> Any:
        """Join the run's collective group as rank 0; returns the layout every sampler receives into."""
        from arpo_engine.distributed import collective
        from arpo_engine.lora import merged_state_dict

        collective.join(address, 0, world, backend)
        self._backend = backend
        return collective.layout_of(merged_state_dict(self._learner.model))

    def broadcast_weights(self, layout: Any) -> int:
        """Send the version and the weights to every sampler of the group; returns the version sent."""
        from arpo_engine.distributed import collective
        from arpo_engine.lora import merged_state_dict

        state = merged_state_dict(self._learner.model)
        collective.send(self.version, state, layout, collective.device_for(self._backend))
        return self.version

    def save(
        self,
        step: int,
        metrics: Mapping[str, float],
        rng_state: Any,
        position: tuple[int, int],
        agent: Mapping[str, Any] | None,
    ) -> str:
        """A checkpoint with the driver's rollout generator and data position, as the in-process run writes it."""
        from arpo_engine.checkpoint import DataPosition

        rng = random.Random()
        rng.setstate(rng_state)
        path = self.manager.save(
            step,
            self._learner.model,
            self._tokenizer,
            run_config=self.config,
            metrics=metrics,
            optimizer=self._learner.optimizer,
            rng={"rollout": rng},
            data_position=DataPosition(*position),
            best_metric=metrics.get("eval/accuracy"),
            agent=agent,
        )
        return str(path)
