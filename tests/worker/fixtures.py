"""A real Celery worker process for tests: `celery_worker` starts one on the "short" queue, connected
to this test's database, Redis and media root, and stops it at teardown. `runs_worker` starts one on
the "runs" queue, connected also to `ray_head`: a local Ray head of the test session's own (its
ports and temp folder private, token auth as the launcher sets it), stopped at the session's end.

Tests that use it need `transactional_db` (the worker is another process: it must see committed
rows), which the fixture requests itself. Import it into a conftest to use it there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 90


def database_url() -> str:
    """DATABASE_URL of the test database this process uses (pytest-django's `test_…` copy)."""
    from django.db import connection

    s = connection.settings_dict
    auth = quote(s["USER"] or "", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    host = s.get("HOST") or "localhost"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}{'@' if auth else ''}{host}{port}/{s['NAME']}"


@dataclass
class CeleryWorker:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _purge(queue: str) -> None:
    from worker.celery_app import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue)


def start_worker(
    queue: str, settings: Any, log_path: Path, extra_env: dict[str, str] | None = None, *, purge: bool = True
) -> CeleryWorker:
    """A `celery worker -Q <queue> -P solo` process for this test's database; ready when this returns.

    `purge`: drop the queue's messages first (left by an earlier, interrupted test run, they would point
    at rows that are gone); a test that queued its own messages before starting the worker says False.
    """
    if purge:
        _purge(queue)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings.test",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "ARPO_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    celery = str(Path(sys.executable).parent / "celery")
    command = [
        celery, "-A", "worker.celery_app", "worker", "-Q", queue, "-P", "solo", "--concurrency", "1",
        "-l", "info", "-n", f"test-{queue}-{os.getpid()}-{time.monotonic_ns()}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(process, log_path)
    except BaseException:
        _stop(process)
        raise
    return CeleryWorker(process, log_path)


@pytest.fixture
def celery_worker(transactional_db: None, settings: Any, tmp_path: Path) -> Iterator[CeleryWorker]:
    """A `celery worker -Q short -P solo` process for this test's database; its log is in tmp_path."""
    worker = start_worker("short", settings, tmp_path / "celery-worker.log")
    try:
        yield worker
    finally:
        _stop(worker.process)


@dataclass
class RayHead:
    address: str
    env: dict[str, str]
    """What a process needs to join it: RAY_ADDRESS and the token auth variables."""
    process: subprocess.Popen[bytes]
    log_path: Path


def _free_port_block(size: int = 4) -> int:
    import socket

    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + size < 65000 and all(_port_free(p) for p in range(port, port + size)):
            return port
    raise RuntimeError("no block of free ports for a Ray head")


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayHead]:
    """A local Ray head (`ray start --head --block`) for the session; its processes end with the session."""
    import secrets
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="arpo-ray-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    token = folder / "token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    port = _free_port_block()
    env = {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    }
    log_path = tmp_path_factory.mktemp("ray") / "ray-head.log"
    command = [
        str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", f"--port={port}",
        f"--ray-client-server-port={port + 1}", f"--dashboard-agent-listen-port={port + 2}",
        f"--dashboard-port={port + 3}", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
        "--disable-usage-stats", f"--temp-dir={folder / 'r'}", "--num-cpus=2",
        # Room for one run that asks for it (ARPO_RUN_RESOURCES=run_slot=1): the queue test's second run waits.
        '--resources={"run_slot": 1}',
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    head = RayHead(f"127.0.0.1:{port}", {**env, "RAY_ADDRESS": f"127.0.0.1:{port}"}, process, log_path)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while "Ray runtime started" not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield head
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """End a process we started in its own session, and everything it started (by its group id)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.poll() is None:
        process.wait(timeout=10)


@pytest.fixture
def runs_worker(transactional_db: None, settings: Any, tmp_path: Path, ray_head: RayHead) -> Iterator[CeleryWorker]:
    """A `celery worker -Q runs -P solo` process joined to `ray_head`; actors take no CPU from Ray's count,
    so runs never wait for each other's resources in tests (the queue is Celery's)."""
    extra = {
        **ray_head.env,
        "ARPO_RUN_NUM_CPUS": "0",
        "ARPO_RUN_LEASE_S": "10",
        "ARPO_RUN_HEARTBEAT_S": "2",
        "ARPO_RUN_THREADS": "2",
        "ARPO_RUN_NO_TOOL_STEPS": "0",  # the tiny random model never calls a tool; tests that check this set it
    }
    worker = start_worker("runs", settings, tmp_path / "runs-worker.log", extra)
    try:
        yield worker
    finally:
        _stop(worker.process)


def _wait_ready(process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if " ready." in text:
            return
        if process.poll() is not None:
            raise RuntimeError(f"the Celery worker exited with {process.returncode}:\n{text[-3000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"the Celery worker was not ready after {READY_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # warm shutdown: finish the current task, then exit
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
