"""A real Celery worker process for tests: `celery_worker` starts one on the "short" queue, connected
to this test's database, Redis and media root, and stops it at teardown.

Tests that use it need `transactional_db` (the worker is another process: it must see committed
rows), which the fixture requests itself. Import it into a conftest to use it there.
"""

from __future__ import annotations

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


@pytest.fixture
def celery_worker(transactional_db: None, settings: Any, tmp_path: Path) -> Iterator[CeleryWorker]:
    """A `celery worker -Q short -P solo` process for this test's database; its log is in tmp_path."""
    _purge("short")  # messages left by an earlier, interrupted test run would point at rows that are gone
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings.test",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "ARPO_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path / "celery-worker.log"
    celery = str(Path(sys.executable).parent / "celery")
    command = [
        celery, "-A", "worker.celery_app", "worker", "-Q", "short", "-P", "solo", "--concurrency", "1",
        "-l", "info", "-n", f"test-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(process, log_path)
        yield CeleryWorker(process, log_path)
    finally:
        _stop(process)


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
