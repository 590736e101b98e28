"""Websocket fan-out of one run's live events (docs/benchmarks.md, "Websocket fan-out").

N clients watch one run over `/ws/runs/<id>/` (API-token auth) on a real uvicorn serving the project's
ASGI app, with the Redis channel layer, all on 127.0.0.1. A publisher sends metric events to the run's
group as the relay does (`channel_layer.group_send`), each stamped with its publish time; every client
records when it receives each one. Reported per N: p50/p99 publish-to-receipt latency, events/s delivered
(all clients together), events lost. Bounded: N ≤ 1000, at most `--events` events, a deadline per round.

    DATABASE_URL=postgres://root@localhost:5432/arpo_dash REDIS_URL=redis://127.0.0.1:6379/13 \\
        .venv/bin/python bench/ws_fanout.py --clients 50 200 500 --events 100 --rate 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings.dev")


def setup_run() -> tuple[int, str]:
    """A user, an API token and a running run in the database uvicorn uses (made once, reused)."""
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from webapp.accounts.models import ApiToken
    from webapp.runs.models import BaseModel, Run

    user, _ = User.objects.get_or_create(username="bench-fanout")
    model, _ = BaseModel.objects.get_or_create(slug="smollm2-135m", defaults={"display_name": "SmolLM2", "path": "x"})
    run = Run.objects.filter(name="ws fan-out bench", owner_user=user).first()
    if run is None:
        run = Run.objects.create(name="ws fan-out bench", preset="arpo_paper", base_model=model, owner_user=user,
                                 created_by=user, status=Run.Status.RUNNING, config={"train": {"steps": 10**6}})  # fmt: skip
    _, token = ApiToken.objects.create(user=user, name="ws fan-out bench", expiry=None)
    return run.pk, token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", "webapp.asgi:application", "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning", "--no-access-log"]  # fmt: skip
    server = subprocess.Popen(
        command, cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("uvicorn did not start")


class Client:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.seqs: set[int] = set()
        self.ready = asyncio.Event()
        self.last_at = 0.0

    async def run(self, url: str, token: str, stop: asyncio.Event) -> None:
        import websockets

        async with websockets.connect(url, additional_headers={"Authorization": f"Token {token}"},
                                      max_queue=None, open_timeout=120) as ws:  # fmt: skip
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
                except TimeoutError:
                    continue
                now = time.time()
                message = json.loads(raw)
                if message["type"] == "history.end":
                    self.ready.set()
                elif message["type"] == "run.metrics" and "t_pub" in message["data"]:
                    self.latencies.append(now - message["data"]["t_pub"])
                    self.last_at = now
                    self.seqs.add(message["seq"])


async def round_(n: int, *, port: int, run_id: int, token: str, events: int, rate: float, seq0: int) -> dict[str, Any]:
    from channels.layers import get_channel_layer

    from webapp.runs import groups

    url = f"ws://127.0.0.1:{port}/ws/runs/{run_id}/?after=0"  # the bench run has no stored events: no history
    stop = asyncio.Event()
    clients = [Client() for _ in range(n)]
    tasks = []
    t_connect = time.monotonic()
    for i in range(0, n, 25):  # connect in batches: the handshakes each read the database
        batch = clients[i : i + 25]
        tasks += [asyncio.create_task(c.run(url, token, stop)) for c in batch]
        await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in batch)), timeout=180)
    connect_s = time.monotonic() - t_connect
    layer = get_channel_layer()
    group = groups.run_group(run_id)
    t0 = time.time()
    for k in range(events):
        seq = seq0 + k + 1
        data = {"t_pub": time.time(), "reward/mean": 0.1, "accuracy": 0.5, "entropy/token_mean": 1.0}
        await layer.group_send(group, {"type": "run.metrics", "kind": "metrics", "seq": seq, "step": seq, "data": data})
        await asyncio.sleep(max(0.0, t0 + (k + 1) / rate - time.time()))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(len(c.seqs) for c in clients) < n * events:
        await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies = sorted(x for c in clients for x in c.latencies)
    received = len(latencies)
    wall = max((c.last_at for c in clients), default=t0) - t0
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 100 else [float("nan")] * 99
    return {
        "clients": n, "events": events, "rate_per_s": rate, "connect_s": round(connect_s, 1),
        "received": received, "lost": n * events - received,
        "p50_ms": round(q[49] * 1000, 1), "p99_ms": round(q[98] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
        "delivered_per_s": round(received / wall) if wall > 0 else None,
    }  # fmt: skip


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    run_id, token = await asyncio.to_thread(setup_run)
    port = free_port()
    server = start_server(port)
    results = []
    try:
        for n in args.clients:  # new sockets each round: seq starts again at 1 for them
            result = await round_(n, port=port, run_id=run_id, token=token, events=args.events, rate=args.rate, seq0=0)
            print(json.dumps(result), flush=True)
            results.append(result)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:  # open sockets keep a graceful shutdown waiting
            server.kill()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[50, 200, 500])
    parser.add_argument("--events", type=int, default=100, help="metric events per round")
    parser.add_argument("--rate", type=float, default=10.0, help="events per second the publisher sends")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench_ws_fanout.json")
    args = parser.parse_args()
    if max(args.clients) > 1000:
        raise SystemExit("at most 1000 clients")
    load = os.getloadavg()
    results = asyncio.run(main(args))
    report = {"machine": f"{os.cpu_count()} CPUs, load average before {load[0]:.1f}", "results": results}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
