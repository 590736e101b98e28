"""The embedded default, once: `python -m webapp.launch` (what `make run` starts) with no DATABASE_URL,
REDIS_URL or RAY_ADDRESS serves the app on SQLite with its own Redis and Ray head, the demo user can
sign in over HTTP, and Ctrl-C leaves no process behind.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from webapp import launch
from webapp.launch import port_is_free

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180
STOP_TIMEOUT_S = 60


def free_port_block(size: int) -> int:
    """The first of `size` consecutive free ports, above Ray's default worker-port range (10002-19999) and
    below the kernel's ephemeral range (from 32768), where any outgoing connection (Ray's start-up makes
    many) could take the port between this check and the launcher's bind."""
    for _ in range(200):
        base = random.randint(20_000, 32_000)
        if all(port_is_free("127.0.0.1", p) for p in range(base, base + size)):
            return base
    raise RuntimeError("no block of free ports")


def processes_with(marker: str) -> list[int]:
    """Processes whose environment holds `marker`: the launcher and everything it started inherit it."""
    found = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


@dataclass
class Launched:
    process: subprocess.Popen[str]
    url: str
    var: Path
    log: Path
    ray_port: int
    marker: str  # in the environment of every process it started


@pytest.fixture
def launched(tmp_path: Path) -> Iterator[Launched]:
    var = tmp_path / "var"
    var.mkdir()
    if (ROOT / "var" / "demo" / "manifest.json").is_file():
        (var / "demo").symlink_to(ROOT / "var" / "demo")
    web, redis, ray = free_port_block(1), free_port_block(1), free_port_block(4)
    drop = {"DATABASE_URL", "REDIS_URL", "RAY_ADDRESS", "DJANGO_SETTINGS_MODULE", "SECRET_KEY"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith(("ARPO_", "RAY_"))}
    env.update(ARPO_VAR_DIR=str(var), ARPO_PORT=str(web), ARPO_REDIS_PORT=str(redis), ARPO_RAY_PORT=str(ray))
    env["ARPO_WORKER_CONCURRENCY"] = "1"
    ray_temp = Path(tempfile.mkdtemp(prefix="arpo-ray-"))  # short: Ray's socket paths live under it
    env["ARPO_RAY_TEMP_DIR"] = str(ray_temp)
    log = tmp_path / "launch.log"
    with log.open("w") as out:
        # Its own session, like a terminal's foreground job: Ctrl-C goes to the whole group.
        process = subprocess.Popen(
            [sys.executable, "-m", "webapp.launch"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )  # fmt: skip
    marker = f"ARPO_VAR_DIR={var}"
    try:
        yield Launched(process, f"http://127.0.0.1:{web}", var, log, ray, marker)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(ray_temp, ignore_errors=True)


def wait_until_healthy(process: subprocess.Popen[str], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the launcher exited early:\n{log.read_text()[-4000:]}"
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"no /healthz within {START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


def sign_in(url: str, username: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=10) as client:
        form = client.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token, form.text[:2000]
        data = {"csrfmiddlewaretoken": token.group(1), "username": username, "password": password}
        response = client.post("/login/", data=data, headers={"Referer": url + "/login/"})
        assert response.status_code == 302, response.text[:2000]
        return client.get(response.headers["location"], follow_redirects=True)


def wait_for_port(port: int, timeout_s: float = START_TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.5)
    return False


def test_make_run_embedded_default_serves_signs_in_and_stops_without_leftovers(launched: Launched) -> None:
    process, url, var, log, marker = launched.process, launched.url, launched.var, launched.log, launched.marker
    wait_until_healthy(process, url, log)

    password = (var / "demo-login.txt").read_text().strip()
    home = sign_in(url, "demo", password)
    assert home.status_code == 200
    assert "demo" in home.text and "Sign out" in home.text
    assert (var / "db.sqlite3").is_file()  # SQLite under the var folder, no DATABASE_URL
    assert wait_for_port(launched.ray_port), "the local Ray head never listened"
    running = processes_with(marker)
    assert len(running) >= 6, running  # launcher, redis, web, worker, Ray head and its GCS, raylet …

    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=STOP_TIMEOUT_S) == 0  # a Ctrl-C stop is a clean exit
    deadline = time.monotonic() + 10
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_with(marker) == [], log.read_text()[-3000:]
    output = log.read_text()
    assert f"ARPO Studio is running at {url}/" in output
    assert f"Sign in as demo / {password}" in output


def test_a_port_in_use_stops_the_launcher_with_the_variable_to_change(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
        env.update(ARPO_VAR_DIR=str(tmp_path), ARPO_PORT=str(port))
        result = subprocess.run(
            [sys.executable, "-m", "webapp.launch"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 2
    assert f"Port {port}" in result.stderr and "ARPO_PORT" in result.stderr


def test_with_real_services_set_the_launcher_starts_no_redis_and_no_ray_head_of_its_own(tmp_path: Path) -> None:
    environ = {
        "DATABASE_URL": "postgres://db.example/arpo",
        "REDIS_URL": "redis://redis.example:6379/0",
        "RAY_ADDRESS": "ray-head.example:6379",
        "PATH": "/usr/bin",
    }
    env = launch.child_environment(environ, folder=tmp_path, redis_url=None)
    assert env["REDIS_URL"] == "redis://redis.example:6379/0"
    assert env["RAY_ADDRESS"] == "ray-head.example:6379"
    assert set(launch.procfile_processes(env)) == {"web", "worker"}


def test_the_embedded_default_runs_web_worker_and_a_ray_head_from_the_procfile(tmp_path: Path) -> None:
    env = launch.child_environment({"PATH": "/usr/bin"}, folder=tmp_path, redis_url="redis://127.0.0.1:6399/0")
    processes = launch.procfile_processes(env)
    assert set(processes) == {"web", "worker", "ray"}
    assert "--queues runs,short" in processes["worker"]
    assert "webapp.asgi:application" in processes["web"]
    assert env["RAY_ADDRESS"] == "127.0.0.1:6390" and env["RAY_AUTH_MODE"] == "token"
    assert Path(env["RAY_AUTH_TOKEN_PATH"]).stat().st_mode & 0o077 == 0
