"""The run's Ray actor: builds the engine run from the stored, resolved config and calls the engine.

No Django here: the actor process knows only the engine and this module. The worker's relay
(worker/relay.py) creates one named, detached actor per run, starts it, and then polls it for events.
Every event (metrics, rollout tree, eval, checkpoint saved, log line, phase, status) gets the run's next
sequence number here and stays in the actor's memory until the relay acknowledges it by asking for
what comes after it — so a relay that restarts neither loses nor repeats one. The cancel flag travels
the other way (`request_stop`); the engine reads it between phases.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.trees import tree_record

TERMINAL = ("succeeded", "failed", "cancelled")
SUMMARY_KEYS = ("reward/mean", "accuracy", "format/ok_frac", "eval/accuracy", "eval/format_ok", "eval/reward_mean")


@dataclass
class RunOptions:
    """How the actor runs the engine; plain values, chosen by the worker from its settings."""

    rollout_sample: int = 4
    """Rollout trees sent per step (the first prompts of the step's batch)."""
    tree_max_bytes: int = 64 * 1024
    """A tree larger than this as JSON is thinned (entropies, then texts, then paths) until it fits."""
    no_tool_steps: int = 5
    """Fail a run with tools whose model called none in its first this-many steps (0: never)."""
    threads: int = 0
    """torch.set_num_threads in the actor (0: leave Ray's choice)."""
    request_memory: bool = True
    """A distributed run's learner and sampler actors ask Ray for the memory the engine estimates."""
    recorded_through: int = -1
    """The last step whose metrics the database held when this actor was placed (-1: unknown). A resume
    step after it was lost with the previous actor, and is sent again."""
    extra: dict[str, Any] = field(default_factory=dict)


class EventBuffer:
    """Numbered events awaiting the relay's acknowledgement; thread-safe."""

    def __init__(self, first_seq: int) -> None:
        self._next = first_seq
        self._events: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()

    def emit(self, kind: str, data: Mapping[str, Any], *, step: int | None = None, private: bool = False) -> int:
        with self._lock:
            seq = self._next
            self._next += 1
            event = {"seq": seq, "kind": kind, "step": step, "data": dict(data), "at": time.time()}
            if private:
                event["private"] = True
            self._events.append(event)
            return seq

    def after(self, seq: int, limit: int) -> list[dict[str, Any]]:
        """Drop what the relay has stored (seq <= `seq`) and return up to `limit` of the rest, oldest first."""
        with self._lock:
            while self._events and self._events[0]["seq"] <= seq:
                self._events.popleft()
            return [self._events[i] for i in range(min(limit, len(self._events)))]

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._events)


def cancelled_reason(kept_checkpoint: bool) -> str:
    """What a cancelled run says of itself, true to whether a checkpoint is there to resume from."""
    if kept_checkpoint:
        return "Cancelled; the last checkpoint is kept."
    return "Cancelled before its first checkpoint; Resume starts it from the beginning."


def explain_failure(exc: BaseException, phase: str) -> str:
    """A reason a person can act on, from the exception that ended the run."""
    from arpo_engine.config import ConfigError
    from arpo_engine.data import DataError

    text = " ".join(str(exc).split())
    where = f"while {phase}" if phase else ""
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return (
            f"Out of memory {where or 'during the run'}: give the run more memory, or lower rollout.group_size, "
            "rollout.max_response_tokens or optim.micro_batch_tokens."
        )
    if isinstance(exc, FileNotFoundError) or text.startswith("no data file at") or "no such file" in text:
        return f"A file the run needs is gone ({text}): upload the dataset again and clone the run."
    if isinstance(exc, DataError):
        return f"The dataset has problems: {text}"
    if isinstance(exc, ConfigError):
        return f"The run's config cannot be used: {text}"
    return f"{type(exc).__name__} {where}: {text}"[:1000]


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class RunActor:
    """One run on Ray. `ray.remote(RunActor)` is made by `remote_class()`; in-process it works the same."""

    def __init__(
        self,
        run_id: int,
        config: Mapping[str, Any],
        *,
        first_seq: int = 1,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
        options: RunOptions | None = None,
    ) -> None:
        self.run_id = run_id
        self.config = dict(config)
        self.secrets = {name: dict(headers) for name, headers in (secrets or {}).items()}
        self.options = options or RunOptions()
        self.events = EventBuffer(first_seq)
        self.state = "placed"
        self.phase = ""
        self.fail_reason = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported_checkpoints: set[int] = set()
        self._tool_calls_seen = False
        self._began: tuple[float, float] | None = None  # (monotonic, process CPU seconds) when the engine started
        self._ended: tuple[float, float] | None = None
        self._resources: dict[str, float] = {}

    # --- called by the relay -------------------------------------------------------------------------------

    def start(self) -> bool:
        """Start the engine in a thread (once); False if it was started already."""
        if self._thread is not None:
            return False
        self._thread = threading.Thread(target=self._main, name=f"run-{self.run_id}", daemon=True)
        self._thread.start()
        return True

    def poll(self, after: int, limit: int = 200) -> dict[str, Any]:
        events = self.events.after(after, limit)
        done = self.state in TERMINAL and self.events.pending == len(events)
        return {"events": events, "state": self.state, "done": done, "pid": os.getpid(), "usage": self.usage()}

    def usage(self) -> dict[str, Any]:
        """Compute this actor used so far: wall and CPU seconds of the engine (its process and the tool
        subprocesses it waited for), and the GPUs Ray assigned it × wall seconds."""
        if self._began is None:
            return {"attempt": self.options.extra.get("attempt", 0), "wall_s": 0.0, "cpu_s": 0.0, "gpu_s": 0.0}
        until = self._ended or (time.monotonic(), _cpu_seconds())
        wall = until[0] - self._began[0]
        gpus, cpus = self._resources.get("GPU", 0.0), self._resources.get("CPU", 0.0)
        return {
            "attempt": self.options.extra.get("attempt", 0), "wall_s": round(wall, 3),
            "cpu_s": round(until[1] - self._began[1], 3), "gpu_s": round(gpus * wall, 3), "cpus": cpus, "gpus": gpus,
        }  # fmt: skip

    def request_stop(self) -> bool:
        self._stop.set()
        return True

    def ping(self) -> dict[str, Any]:
        return {"state": self.state, "phase": self.phase, "pid": os.getpid(), "pending": self.events.pending}

    # --- the engine, in a thread ---------------------------------------------------------------------------

    def _set_phase(self, phase: str) -> None:
        if phase != self.phase:
            self.phase = phase
            self.events.emit("phase", {"phase": phase})

    def _main(self) -> None:
        self._began = (time.monotonic(), _cpu_seconds())
        self._resources = _assigned_resources()
        self.state = "running"
        self.events.emit("status", {"status": "running", "pid": os.getpid()})
        self._set_phase("loading")
        status, reason, steps = "failed", "", 0
        try:
            result = self._train()
            steps = int(result.steps_done)
            if self.fail_reason:
                status, reason = "failed", self.fail_reason
            elif result.stopped:
                status, reason = "cancelled", cancelled_reason(self._checkpoint_kept())
            else:
                status = "succeeded"
        except BaseException as exc:  # the run's end, whatever it was, must reach the relay
            reason = self.fail_reason or explain_failure(exc, self.phase)
            self.events.emit("log", {"line": traceback.format_exc(), "level": "error"}, private=True)
        self._set_phase("finished")
        self._ended = (time.monotonic(), _cpu_seconds())
        self.events.emit("status", {"status": status, "reason": reason, "steps_done": steps})
        self.state = status

    def _train(self) -> Any:
        from arpo_engine.config import RunConfig
        from arpo_engine.pipeline import run_training

        if self.options.threads:
            import torch

            torch.set_num_threads(self.options.threads)
        config = RunConfig.from_dict(self.config)
        kwargs: dict[str, Any] = {}
        if self.secrets:
            kwargs["tool_secrets"] = self.secrets
        if config.distributed.enabled:
            # This actor becomes the run's driver: the engine places a learner and sampler actors beside it.
            from arpo_engine.distributed import Placement

            kwargs["placement"] = Placement(request_memory=self.options.request_memory, on_placed=self._on_placed)
        self._replay_resume_step()
        return run_training(
            config,
            run_id=str(self.run_id),
            log=self._log,
            sink=self._sink,
            should_stop=self._stop.is_set,
            on_rollout=self._on_rollout,
            sft_sink=self._sft_sink,
            on_phase=self._set_phase,
            **kwargs,
        )

    def _run_dir(self) -> Path:
        """Where the engine keeps this run's checkpoints (`pipeline.plan_run`)."""
        return Path(self.config["checkpoint"]["dir"]) / f"run-{self.run_id}"

    def _checkpoint_kept(self) -> bool:
        from arpo_engine.checkpoint import find_resume_point

        return find_resume_point(self._run_dir()) is not None

    def _replay_resume_step(self) -> None:
        """Re-send the metrics and checkpoint of the step this run resumes from (kept in the step's run.json).

        The actor that saved that checkpoint may have died before the relay collected the step's events (it
        keeps them until asked), and training goes on after it, so nothing else would send them again. Only a
        step the database does not hold yet (`RunOptions.recorded_through`) is sent, so the event log keeps
        one metrics event per step.
        """
        from arpo_engine.checkpoint import find_resume_point
        from arpo_engine.checkpoint_files import read_json

        point = find_resume_point(self._run_dir())
        if point is None or point.step <= self.options.recorded_through:
            return
        try:
            saved = read_json(point.model_dir / "run.json").get("metrics") or {}
        except (OSError, ValueError):
            return
        values = {str(k): float(v) for k, v in saved.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        if values:
            self._emit_step(point.step, values)

    def _on_placed(self, reserved: Mapping[str, float]) -> None:
        """A distributed run's actors hold these CPUs and GPUs too: they count in its usage."""
        for key, value in reserved.items():
            self._resources[key] = self._resources.get(key, 0.0) + float(value)

    def _log(self, line: str) -> None:
        text = str(line)
        if text.startswith("SFT on"):
            self._set_phase("sft")
        elif text.startswith("resuming from"):
            self._set_phase("resuming")
        self.events.emit("log", {"line": text, "level": "info"})

    def _on_rollout(self, step: int, batch: Any, rewards: Sequence[Sequence[Any]]) -> None:
        pairs = list(zip(batch.groups, rewards, strict=False))[: self.options.rollout_sample]
        for group, group_rewards in pairs:
            tree = tree_record(group, group_rewards, max_bytes=self.options.tree_max_bytes)
            self.events.emit("rollout", tree, step=step)

    def _sft_sink(self, update: int, metrics: Mapping[str, float]) -> None:
        """The SFT cold start's progress and loss: a metrics event without a step (steps are RL steps), so the
        relay stores and broadcasts it but writes no MetricPoint."""
        self._set_phase("sft")
        self.events.emit("metrics", {key: float(value) for key, value in metrics.items()})

    def _sink(self, step: int, metrics: Mapping[str, float]) -> None:
        values = {key: float(value) for key, value in metrics.items()}
        self._emit_step(step, values)
        self._watch_tool_calls(step, values)

    def _emit_step(self, step: int, values: Mapping[str, float]) -> None:
        """A step's metrics, its evaluation (if any) and its checkpoint (once saved)."""
        self.events.emit("metrics", values, step=step)
        evals = {key: value for key, value in values.items() if key.startswith("eval/")}
        if evals:
            self.events.emit("eval", evals, step=step)
        self._report_checkpoint(step, values)

    def _report_checkpoint(self, step: int, values: Mapping[str, float]) -> None:
        folder = self._run_dir() / f"step-{step}"
        if step in self._reported_checkpoints or not (folder / "config.json").is_file():
            return
        self._reported_checkpoints.add(step)
        summary = {key: values[key] for key in SUMMARY_KEYS if key in values}
        self.events.emit(
            "checkpoint", {"folder": str(folder), "size_bytes": folder_size(folder), "metrics": summary}, step=step
        )

    def _watch_tool_calls(self, step: int, values: Mapping[str, float]) -> None:
        limit = self.options.no_tool_steps
        if not limit or not self.config.get("tools") or step <= 0:
            return
        if values.get("tools/calls_total", 0.0) > 0:
            self._tool_calls_seen = True
        if not self._tool_calls_seen and step >= limit and not self._stop.is_set():
            self.fail_reason = (
                f"The model never called a tool in {step} steps: add SFT demonstrations (a cold start that "
                "shows tool calls), or start from a model that already calls tools."
            )
            self._stop.set()


def _cpu_seconds() -> float:
    # The actor's process is the run's alone; children: tool subprocesses (python sandbox) once waited for.
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _assigned_resources() -> dict[str, float]:
    """What Ray placed this actor with ({"CPU": 1.0, "GPU": 1.0} …); empty outside Ray."""
    try:
        import ray

        if not ray.is_initialized():
            return {}
        return {k: float(v) for k, v in ray.get_runtime_context().get_assigned_resources().items()}
    except Exception:  # usage is reported best-effort; it must never stop a run
        return {}


def remote_class(**ray_options: Any) -> Any:
    """`RunActor` as a Ray actor class with these options (name, lifetime, resources …)."""
    import ray

    return ray.remote(RunActor).options(**ray_options)
