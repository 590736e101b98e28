"""Service overhead (issue 9): the same short demo run through the service and through the engine CLI.

One process sets up the real stack on this machine: a PostgreSQL database (DATABASE_URL, created and
migrated if missing), Redis (REDIS_URL), a local Ray head of its own (2 CPUs), and one Celery worker on
the `runs` queue joined to it. The demo task's data and tools (search over the demo corpus, python)
are stored through the services, and one run config is made with `run_create`. Then, per repeat, in
alternating order:

- CLI: `python -m arpo_engine train <the run's exported YAML>` (own checkpoint folder), wall time of
  the process;
- service: a fresh run of the same config, `run_launch` -> Celery -> Ray actor -> relay -> `succeeded`;
  wall time from the launch call to the moment the relay recorded the end (`finished_at`).

Both train with 2 torch threads (the actor asks Ray for 2 CPUs). Relay latency: for every event of the
service runs, from the actor's emit (inside the engine's sink, log or rollout callback: `emitted_at`) to
its arrival as a channel-layer message in this process's subscription to the run's group; p50 and p99,
for all events and for metrics alone. Results: docs/bench_service.json (docs/benchmarks.md cites them).

Run: DATABASE_URL=postgres://root@localhost:5432/arpo_bench REDIS_URL=redis://127.0.0.1:6379/12 \\
     .venv/bin/python bench/service.py [--steps 2] [--prompts 4] [--repeats 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEMO = ROOT / "var" / "demo"
READY_S = 120


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-demo-sft", help="base model slug (the service's catalogue)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=4, help="training prompts (rows of the demo train set)")
    parser.add_argument("--repeats", type=int, default=1, help="CLI/service pairs, alternating which goes first")
    parser.add_argument("--latency-steps", type=int, default=10,
                        help="then a service run of this many steps of the tiny random model, for many relayed events "
                        "(0: none); with --repeats 0 only this, merged into --out")  # fmt: skip
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench_service.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="arpo-bench-", dir="/tmp"))
    _environment(work)
    ray_head = worker = None
    try:
        _django()
        ray_head, ray_env = _start_ray(work)
        worker = _start_worker(work, ray_env)
        config_run = _demo_run(args, args.model, args.steps)
        results: dict[str, Any] = {"config": _summary(config_run.config), "cli": [], "service": [], "events": []}
        for r in range(args.repeats):
            order = ("cli", "service") if r % 2 == 0 else ("service", "cli")
            for side in order:
                if side == "cli":
                    results["cli"].append(_cli_run(config_run, work, r))
                else:
                    wall, events = _service_run(config_run, worker, r)
                    results["service"].append(wall)
                    results["events"].extend(events)
                print(f"repeat {r}: {side} {results[side][-1]['wall_s']:.1f} s", flush=True)
        out = Path(args.out)
        report = _report(results) if args.repeats else json.loads(out.read_text()) if out.is_file() else {}
        if args.latency_steps:
            report["relay_latency_tiny"] = _latency_run(args, work, worker)
            print(f"tiny model, {args.latency_steps} steps: {report['relay_latency_tiny']}", flush=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
        if args.repeats:
            _print(report)
        return 0
    finally:
        if worker is not None:
            _stop(worker)
        if ray_head is not None:
            _stop_group(ray_head)
        shutil.rmtree(work, ignore_errors=True)


# --- the stack -------------------------------------------------------------------------------------------


def _environment(work: Path) -> None:
    os.environ.setdefault("DATABASE_URL", "postgres://root@localhost:5432/arpo_bench")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/12")
    os.environ["DJANGO_SETTINGS_MODULE"] = "webapp.settings.dev"
    os.environ["ARPO_MEDIA_ROOT"] = str(work / "media")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    (work / "media").mkdir()


def _django() -> None:
    import dj_database_url
    import psycopg

    db = dj_database_url.parse(os.environ["DATABASE_URL"])
    if db["ENGINE"].endswith("postgresql"):
        admin: dict[str, Any] = {
            "dbname": "postgres",
            "user": db["USER"],
            "host": db["HOST"] or "localhost",
            "port": db["PORT"] or 5432,
        }
        with psycopg.connect(**admin, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone():
                conn.execute(f'CREATE DATABASE "{db["NAME"]}"')
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _free_port() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 4 < 65000:
            return port
    raise RuntimeError("no free port")


def _start_ray(work: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """A private Ray head (token auth, short temp path: Ray's socket paths have a length limit)."""
    token = work / "ray-token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    port = _free_port()
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}  # fmt: skip
    log = work / "ray.log"
    command = [
        str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", f"--port={port}",
        f"--ray-client-server-port={port + 1}", f"--dashboard-agent-listen-port={port + 2}",
        f"--dashboard-port={port + 3}", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
        "--disable-usage-stats", f"--temp-dir={work / 'r'}", "--num-cpus=2",
    ]  # fmt: skip
    with log.open("wb") as f:
        process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=f, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    _wait(process, log, "Ray runtime started", "the Ray head")
    return process, {**env, "RAY_ADDRESS": f"127.0.0.1:{port}"}


def _start_worker(work: Path, ray_env: dict[str, str]) -> subprocess.Popen[bytes]:
    from worker.celery_app import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("runs")
    env = {**os.environ, **ray_env, "ARPO_RUN_NUM_CPUS": "2", "ARPO_RUN_THREADS": "2", "ARPO_RUN_NO_TOOL_STEPS": "0",
           "PYTHONUNBUFFERED": "1"}  # fmt: skip
    log = work / "worker.log"
    command = [str(Path(sys.executable).parent / "celery"), "-A", "worker.celery_app", "worker", "-Q", "runs",
               "-P", "solo", "--concurrency", "1", "-l", "info", "-n", f"bench-{os.getpid()}@%h",
               "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
    with log.open("wb") as f:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    _wait(process, log, " ready.", "the Celery worker")
    process.log = log  # type: ignore[attr-defined]
    return process


def _wait(process: subprocess.Popen[bytes], log: Path, marker: str, what: str) -> None:
    deadline = time.monotonic() + READY_S
    while marker not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


# --- the demo run ----------------------------------------------------------------------------------------


def _upload(path: Path, rows: int | None = None) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    lines = path.read_text().splitlines()
    lines = lines[:rows] if rows else lines
    return SimpleUploadedFile(path.name, ("\n".join(lines) + "\n").encode(), content_type="application/jsonl")


def _demo_run(args: argparse.Namespace, model: str, steps: int) -> Any:
    """A draft over the demo data and tools (search over the demo corpus, python), made by the services."""
    import yaml
    from django.contrib.auth.models import User

    from webapp.core.ownership import Owner
    from webapp.datasets.services import dataset_create
    from webapp.runs.services import run_create
    from webapp.tools.models import Tool
    from webapp.tools.services import tool_create

    user, _ = User.objects.get_or_create(username="bench")
    owner = Owner(user=user)
    stamp = time.strftime("%H%M%S")
    prompts = dataset_create(user=user, owner=owner, kind="prompts", name=f"demo prompts {stamp}",
                             file=_upload(DEMO / "train.jsonl", args.prompts), eval_file=_upload(DEMO / "eval.jsonl", 4))  # fmt: skip
    corpus = dataset_create(user=user, owner=owner, kind="corpus", name=f"demo corpus {stamp}",
                            file=_upload(DEMO / "corpus.jsonl"))  # fmt: skip
    Tool.objects.filter(owner_user=user, name__in=["search", "python"]).delete()  # an earlier bench's
    tools = [
        tool_create(user=user, name="search", kind="search", corpus=corpus, top_k=2),
        tool_create(user=user, name="python", kind="python"),
    ]
    demo = yaml.safe_load((ROOT / "configs" / "demo_train.yaml").read_text())
    overrides = {
        "rollout.sampler": "transformers", "rollout.call_format": demo["rollout"]["call_format"],
        "rollout.group_size": 2, "rollout.initial_samples": 1, "rollout.max_response_tokens": 96,
        "rollout.max_tool_calls": 2, "optim.train_batch_prompts": 2, "optim.mini_batch_prompts": 2,
        "optim.trainable_layers": demo["optim"]["trainable_layers"], "optim.lr": demo["optim"]["lr"],
        "train.steps": steps, "train.eval_every": steps, "train.eval_prompts": 2,
        "train.eval_at_start": False, "checkpoint.every_steps": steps, "checkpoint.keep_last": 1,
        "system_prompt": demo["system_prompt"],
    }  # fmt: skip
    run = run_create(user=user, name=f"bench {stamp}", preset="arpo_paper", base_model=model, dataset=prompts,
                     tools=[t.pk for t in tools], overrides=overrides)  # fmt: skip
    if not run.launchable:
        raise SystemExit(f"the bench run is not launchable: {run.errors}")
    return run


def _summary(config: dict[str, Any]) -> dict[str, Any]:
    r, o, t = config["rollout"], config["optim"], config["train"]
    return {"model": Path(str(config["model"]["path"])).name, "steps": t["steps"], "group_size": r["group_size"],
            "train_batch_prompts": o["train_batch_prompts"], "max_response_tokens": r["max_response_tokens"],
            "sampler": r["sampler"], "tools": [tool["name"] for tool in config["tools"]]}  # fmt: skip


def _cli_run(run: Any, work: Path, repeat: int) -> dict[str, Any]:
    import yaml

    config = dict(run.config)
    config["checkpoint"] = {**config["checkpoint"], "dir": str(work / "cli-checkpoints")}
    path = work / f"cli-{repeat}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    metrics = work / f"cli-{repeat}-metrics.jsonl"
    command = [sys.executable, "-m", "arpo_engine", "train", str(path), "--run-id", f"cli-{repeat}", "--restart",
               "--metrics", str(metrics)]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "2"}, capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"the engine CLI failed:\n{done.stderr[-3000:]}")
    steps = len(metrics.read_text().splitlines()) if metrics.is_file() else 0
    return {"wall_s": round(wall, 2), "steps": steps}


class Listener:
    """This process's subscription to a run's channel-layer group; records when each message arrives."""

    def __init__(self, run_id: int) -> None:
        from webapp.runs import groups

        self.group = groups.run_group(run_id)
        self.arrivals: dict[int, float] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)
        self._thread.start()
        self._ready.wait(10)

    async def _listen(self) -> None:
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(self.group, channel)
        self._ready.set()
        while not self._stop.is_set():
            try:
                message = await asyncio.wait_for(layer.receive(channel), timeout=0.5)
            except TimeoutError:
                continue
            if message.get("seq") is not None:
                self.arrivals.setdefault(int(message["seq"]), time.time())
        await layer.group_discard(self.group, channel)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _service_run(
    template: Any, worker: subprocess.Popen[bytes], repeat: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from webapp.runs import lifecycle
    from webapp.runs.models import Run, RunEvent
    from webapp.runs.services import run_clone

    run = run_clone(user=template.created_by, run=template, name=f"{template.name} service {repeat}")
    listener = Listener(run.pk)
    started = time.time()
    lifecycle.run_launch(user=template.created_by, run=run)  # autocommit: the task is sent at once
    deadline = time.monotonic() + 1800
    while not Run.objects.get(pk=run.pk).is_terminal:
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the worker stopped or the run hangs:\n{worker.log.read_text()[-3000:]}")  # type: ignore[attr-defined]
        time.sleep(0.1)
    run = Run.objects.get(pk=run.pk)
    if run.status != Run.Status.SUCCEEDED:
        raise RuntimeError(f"the service run ended {run.status}: {run.status_reason}")
    time.sleep(2)  # the last broadcasts
    listener.close()
    assert run.finished_at is not None and run.started_at is not None
    events = []
    for event in RunEvent.objects.filter(run=run).order_by("seq"):
        arrived = listener.arrivals.get(event.seq)
        events.append({"kind": event.kind, "relay_s": None if arrived is None else arrived - event.emitted_at.timestamp(),
                       "recorded_s": (event.recorded_at - event.emitted_at).total_seconds()})  # fmt: skip
    wall = {"wall_s": round(run.finished_at.timestamp() - started, 2), "steps": run.steps_done,
            "until_running_s": round(run.started_at.timestamp() - started, 2),
            "engine_s": round(run.wall_seconds, 2)}  # fmt: skip
    return wall, events


def _latency_run(args: argparse.Namespace, work: Path, worker: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Relay latency over many events: a service run of the tiny random model (2 layers, the demo's data
    and tools), whose steps take seconds, so the relay's share of each event's trip is what is measured."""
    from arpo_engine.models import build_tiny_model
    from webapp.runs.models import BaseModel

    folder = build_tiny_model(work / "tiny-model", seed=0)
    BaseModel.objects.update_or_create(
        slug="bench-tiny", defaults={"display_name": "Tiny (bench)", "path": str(folder)}
    )
    run = _demo_run(args, "bench-tiny", args.latency_steps)
    wall, events = _service_run(run, worker, 0)
    relayed = [e["relay_s"] for e in events if e["relay_s"] is not None]
    return {
        "steps": wall["steps"], "wall_s": wall["wall_s"], "engine_s": wall["engine_s"],
        "all_events": _percentiles(relayed),
        "metrics": _percentiles([e["relay_s"] for e in events if e["kind"] == "metrics" and e["relay_s"] is not None]),
        "not_received": len(events) - len(relayed), "database_lag": _percentiles([e["recorded_s"] for e in events]),
        "load_1m": round(os.getloadavg()[0], 2),
    }  # fmt: skip


# --- the report ------------------------------------------------------------------------------------------


def _percentiles(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"n": len(values), "p50_ms": round(1000 * statistics.median(ordered), 1), "p99_ms": round(1000 * p99, 1),
            "max_ms": round(1000 * ordered[-1], 1)}  # fmt: skip


def _report(results: dict[str, Any]) -> dict[str, Any]:
    cli = statistics.median(r["wall_s"] for r in results["cli"])
    service = statistics.median(r["wall_s"] for r in results["service"])
    events = results["events"]
    relayed = [e["relay_s"] for e in events if e["relay_s"] is not None]
    return {
        "config": results["config"],
        "machine": {"cpus": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2)},
        "cli": results["cli"],
        "service": results["service"],
        "median_wall_s": {"cli": cli, "service": service, "ratio": round(service / cli, 3)},
        "relay_latency": {
            "all_events": _percentiles(relayed),
            "metrics": _percentiles(
                [e["relay_s"] for e in events if e["kind"] == "metrics" and e["relay_s"] is not None]
            ),
            "not_received": len(events) - len(relayed),
        },
        "database_lag": _percentiles([e["recorded_s"] for e in events]),
    }


def _print(report: dict[str, Any]) -> None:
    m = report["median_wall_s"]
    print(f"\nservice {m['service']:.1f} s vs CLI {m['cli']:.1f} s: {m['ratio']:.2f}x (target <= 1.1x)")
    relay = report["relay_latency"]
    print(f"relay latency, sink call -> channel-layer message: all events {relay['all_events']}, "
          f"metrics {relay['metrics']}, not received {relay['not_received']}")  # fmt: skip
    print(f"database lag (emit -> row): {report['database_lag']}")


if __name__ == "__main__":
    raise SystemExit(main())
