"""`run_execute`'s body: lease the run, start or attach to its Ray actor, relay its events to the database
and the channel layer, pass the cancel flag to it, and end the run when the actor says it ended.

The actor (worker/runner.py) numbers events and keeps them until the relay asks for what comes after
the last one stored (`Run.last_seq`), so this loop may die at any moment: the next one continues where
the database says. The actor is detached and named `run-<id>`: a relay that finds it alive attaches.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)
USAGE_EVERY_S = 5.0


def actor_name(run_id: int) -> str:
    return f"run-{int(run_id)}"


def connect_ray() -> None:
    import ray

    if ray.is_initialized():
        return
    address = settings.RAY_ADDRESS or "local"
    # Celery replaces stdout/stderr with logging proxies that have no file number; Ray's start-up needs one.
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    try:
        ray.init(
            address=address, namespace=settings.ARPO_RAY_NAMESPACE, log_to_driver=False, logging_level=logging.WARNING
        )
    finally:
        sys.stdout, sys.stderr = saved


def execute(run_id: int, *, task_id: str) -> str:
    """Run (or go on relaying) one run; returns the lease's outcome."""
    from webapp.runs import leases
    from webapp.runs.models import Run

    holder = f"{socket.gethostname()}:{os.getpid()}:{task_id}"[:200]
    lease = leases.lease_acquire(run_id=run_id, holder=holder, ttl_s=settings.ARPO_RUN_LEASE_S)
    if lease is None:
        log.info("run %s: leased by another worker (or gone); nothing to do", run_id)
        return "skipped"
    outcome = "error"
    try:
        run = Run.objects.get(pk=run_id)
        if run.is_terminal or run.is_draft:
            outcome = "nothing to do"
            return outcome
        connect_ray()
        outcome = Relay(run_id, lease).run()
        return outcome
    except Exception as exc:
        from webapp.runs import recording

        log.exception("run %s: the relay failed", run_id)
        reason = f"The worker could not run it ({type(exc).__name__}: {exc}); resume it to try again."
        recording.run_status_set(run_id=run_id, status="failed", reason=reason[:1000])
        return outcome
    finally:
        leases.lease_release(lease=lease, outcome=outcome)


class Relay:
    def __init__(self, run_id: int, lease: Any) -> None:
        self.run_id = run_id
        self.lease = lease
        self.actor: Any = None
        self.placed = False
        self.stop_sent = False
        self.usage: dict[str, Any] | None = None  # the actor's latest compute report (webapp/runs/usage.py)
        self.usage_saved_at = 0.0

    # --- the actor ---------------------------------------------------------------------------------------

    def _attach(self) -> bool:
        import ray

        try:
            self.actor = ray.get_actor(actor_name(self.run_id), namespace=settings.ARPO_RAY_NAMESPACE)
        except ValueError:
            return False
        log.info("run %s: attached to its live actor", self.run_id)
        return True

    def _start(self, *, resuming: bool) -> None:
        from django.db.models import Max

        from webapp.runs import recording
        from webapp.runs.models import Run
        from webapp.tools.selectors import tool_secrets_by_name
        from worker.runner import RunOptions, remote_class

        run = Run.objects.get(pk=self.run_id)
        secrets = tool_secrets_by_name(tool_ids=list(run.tools.values_list("pk", flat=True)))
        recorded = run.metric_points.aggregate(last=Max("step"))["last"]
        options = RunOptions(
            recorded_through=-1 if recorded is None else int(recorded),
            rollout_sample=settings.ARPO_RUN_ROLLOUT_SAMPLE,
            tree_max_bytes=settings.ARPO_RUN_TREE_MAX_BYTES,
            no_tool_steps=settings.ARPO_RUN_NO_TOOL_STEPS,
            threads=settings.ARPO_RUN_THREADS,
            request_memory=settings.ARPO_RUN_REQUEST_MEMORY,
            extra={"attempt": run.attempts + 1},
        )
        actor_class = remote_class(
            name=actor_name(self.run_id),
            namespace=settings.ARPO_RAY_NAMESPACE,
            lifetime="detached",
            **_sized_resources(run.config),
            resources=dict(settings.ARPO_RUN_RESOURCES),
            max_restarts=0,
            runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}},
        )
        Run.objects.filter(pk=self.run_id).update(attempts=run.attempts + 1)
        if resuming:
            recording.run_status_set(run_id=self.run_id, status="resuming")
        self.actor = actor_class.remote(
            self.run_id, run.config, first_seq=run.last_seq + 1, secrets=secrets, options=options
        )
        self.actor.start.remote()
        self.usage = None
        self.placed = False
        self.stop_sent = False

    def _kill(self) -> None:
        import ray

        if self.actor is not None:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(self.actor, no_restart=True)

    # --- the loop ----------------------------------------------------------------------------------------

    def run(self) -> str:
        from ray.exceptions import GetTimeoutError, RayActorError

        from webapp.runs import leases, recording
        from webapp.runs.models import Run

        run = Run.objects.get(pk=self.run_id)
        if not self._attach():
            self._start(resuming=run.attempts > 0)
        after = Run.objects.values_list("last_seq", flat=True).get(pk=self.run_id)
        pending = None
        next_beat = next_check = 0.0
        while True:
            now = time.monotonic()
            if now >= next_beat:
                if not leases.lease_heartbeat(lease=self.lease, ttl_s=settings.ARPO_RUN_LEASE_S):
                    log.warning("run %s: lease lost; another worker relays it now", self.run_id)
                    return "lost"
                next_beat = now + settings.ARPO_RUN_HEARTBEAT_S
            if now >= next_check:
                stop = self._check_stop()
                if stop is not None:
                    return stop
                next_check = now + 0.5
            if pending is None:
                pending = self.actor.poll.remote(after)
            try:
                import ray

                reply = ray.get(pending, timeout=1.0)
            except GetTimeoutError:
                continue  # not placed yet (queued for resources) or busy: keep waiting on the same call
            except RayActorError:
                pending = None
                self._save_usage(None, force=True)  # what the dead actor used, as last reported
                outcome = self._actor_gone()
                if outcome is not None:
                    return outcome
                after = Run.objects.values_list("last_seq", flat=True).get(pk=self.run_id)
                continue
            pending = None
            self._save_usage(reply.get("usage"), force=bool(reply["done"]))
            if not self.placed:
                self.placed = True
                run = Run.objects.get(pk=self.run_id)
                if run.status == Run.Status.QUEUED:
                    recording.run_status_set(run_id=self.run_id, status="starting")
            events = reply["events"]
            if events:
                recording.run_events_record(run_id=self.run_id, events=events)
                after = int(events[-1]["seq"])
            if reply["done"]:
                self._kill()
                return "finished"
            if not events:
                time.sleep(settings.ARPO_RUN_POLL_S)

    def _save_usage(self, usage: dict[str, Any] | None, *, force: bool) -> None:
        """Store the actor's compute report every few seconds and at its end (idempotent per attempt)."""
        from webapp.runs.usage import run_usage_record

        if usage is not None:
            self.usage = usage
        now = time.monotonic()
        if self.usage is None or (not force and now - self.usage_saved_at < USAGE_EVERY_S):
            return
        self.usage_saved_at = now
        run_usage_record(run_id=self.run_id, usage=self.usage)

    def _check_stop(self) -> str | None:
        """Pass a cancel to the actor; an actor still waiting for resources is simply removed."""
        from webapp.runs import recording
        from webapp.runs.models import Run

        run = Run.objects.only("stop_requested", "status").get(pk=self.run_id)
        if run.is_terminal:
            self._kill()
            return "finished"
        if not run.stop_requested or self.stop_sent:
            return None
        if not self.placed:
            self._kill()
            recording.run_status_set(run_id=self.run_id, status="cancelled", reason="Cancelled before it started.")
            return "finished"
        self.actor.request_stop.remote()
        self.stop_sent = True
        return None

    def _actor_gone(self) -> str | None:
        """The actor died (its process was killed, its node lost): resume from the last checkpoint, a few times."""
        from webapp.runs import recording
        from webapp.runs.models import Run

        run = Run.objects.get(pk=self.run_id)
        if run.stop_requested:
            from worker.runner import cancelled_reason

            recording.run_status_set(run_id=self.run_id, status="cancelled",
                                     reason=cancelled_reason(run.checkpoints.exists()))  # fmt: skip
            return "finished"
        if run.attempts > settings.ARPO_RUN_MAX_RESTARTS:
            recording.run_status_set(
                run_id=self.run_id, status="failed",
                reason=f"The run's process died {run.attempts} times; see the log, then resume it.",
            )  # fmt: skip
            return "finished"
        log.warning("run %s: its actor is gone; resuming from the last checkpoint", self.run_id)
        self._start(resuming=True)
        return None


def _sized_resources(config: dict[str, Any]) -> dict[str, Any]:
    """Ray resources of one run's actor: CPUs from the settings, GPUs from the settings or the devices the
    config names, and memory from the engine's estimate for this config (so Ray places the run where it fits).
    """
    resources: dict[str, Any] = {"num_cpus": settings.ARPO_RUN_NUM_CPUS, "num_gpus": settings.ARPO_RUN_NUM_GPUS}
    from arpo_engine.config import RunConfig

    try:
        run_config = RunConfig.from_dict(config)
    except ValueError as exc:  # the actor reports the config's problem as the run's failure reason
        log.warning("this run's config does not load (%s); Ray places it unsized", exc)
        return resources
    if run_config.distributed.enabled:
        # The actor only drives: its learner and sampler actors reserve their own (arpo_engine/distributed).
        resources["num_gpus"] = 0
        if settings.ARPO_RUN_REQUEST_MEMORY:
            from arpo_engine.memory import RUNTIME_BYTES

            resources["memory"] = RUNTIME_BYTES
        return resources
    if not settings.ARPO_RUN_REQUEST_MEMORY:
        return resources
    from arpo_engine.memory import estimate

    try:
        needed = estimate(run_config)
    except (OSError, ValueError, KeyError) as exc:  # model folder not on this node: let Ray place it unsized
        log.warning("no memory estimate for this run (%s); Ray places it without a memory request", exc)
        return resources
    resources["memory"] = needed.total_bytes
    resources["num_gpus"] = max(float(resources["num_gpus"]), float(needed.gpus))
    return resources
