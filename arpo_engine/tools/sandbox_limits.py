"""Host-level limits of the python sandbox: a cgroup per call, and a cap on concurrent sandboxes per host.

RLIMIT_AS bounds one process, so a call's process tree (up to `max_processes` of them) could still
take `max_processes x memory_mb` together: 16 GB with the defaults. Each call therefore runs in its own
cgroup with a total memory cap (`total_memory_mb`, no swap beyond it) and a process cap:

- cgroup v1 (the `memory` and `pids` hierarchies, as on this project's build machines), or
- cgroup v2 (the unified hierarchy at /sys/fs/cgroup with the memory and pids controllers, as on most
  Kubernetes nodes and GPU hosts).

The call's group is created under the cgroup this process is in, so the sandbox stays inside whatever
limits the worker itself runs under. When neither hierarchy is writable, a warning says so once, with
why, and the sandbox falls back to tighter rlimits (`FALLBACK_MAX_PROCESSES`). After the run the group
reports how many processes the kernel killed for going over the cap and the peak memory; then it is removed.

In cgroup v2 a group that holds processes cannot hand controllers to children, so the worker's own group
cannot be the parent of its sandboxes. In a container the image's entry point moves its processes into a
leaf group, delegates memory and pids from the container's root group and names the sandboxes' parent
with `ARPO_SANDBOX_CGROUP`, a path below /sys/fs/cgroup (infra/docker/entrypoint.sh).

A burst of tool calls (many paths calling at once, several workers on one host) queues for one of
`max_concurrent_sandboxes()` host-wide slots instead of thrashing the host: each slot is a lock file
held with flock, so the cap holds across processes, and a crashed process frees its slots.
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
GROUP_PARENT = "arpo-sandbox"
FALLBACK_MAX_PROCESSES = 8
"""Without a cgroup, the per-uid process cap falls to this, so memory_mb x processes stays bounded."""
SLOT_DIR_ENV = "ARPO_SANDBOX_SLOT_DIR"
MAX_CONCURRENT_ENV = "ARPO_SANDBOX_MAX_CONCURRENT"
PARENT_ENV = "ARPO_SANDBOX_CGROUP"


@dataclass(frozen=True)
class GroupReport:
    oom_kills: int = 0
    """Processes the kernel killed because the call's processes together went over the memory cap."""
    peak_memory_mb: float | None = None


class CallGroup:
    """One call's cgroup(s): `procs_files` to join, then `report()`, then `remove()`."""

    def __init__(self, version: int, dirs: list[Path]) -> None:
        self.version, self.dirs = version, dirs

    def join(self, pids: list[int]) -> None:
        """Move these processes into the group (in every hierarchy); their children are born inside."""
        for d in self.dirs:
            for pid in pids:
                (d / "cgroup.procs").write_text(str(pid))

    def report(self) -> GroupReport:
        memory = self.dirs[0]
        if self.version == 1:
            kills = _field(memory / "memory.oom_control", "oom_kill")
            peak = _read_int(memory / "memory.max_usage_in_bytes")
        else:
            kills = _field(memory / "memory.events", "oom_kill")
            peak = _read_int(memory / "memory.peak")
        return GroupReport(kills or 0, peak / 2**20 if peak is not None else None)

    def remove(self) -> None:
        for d in self.dirs:
            # the last process was reaped a moment ago; the kernel may still be releasing the group
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.002)


class Cgroups:
    """Finds a writable hierarchy once; `create` makes a call's group with its limits."""

    def __init__(self, root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> None:
        self.root, self.proc_cgroup = root, proc_cgroup
        self._lock = threading.Lock()
        self._probed = False
        self._version: int | None = None
        self._parents: list[Path] = []
        self._count = 0
        self._reason = ""

    @property
    def version(self) -> int | None:
        """1 or 2 for the hierarchy in use, None when no cgroup can be made (rlimits only)."""
        self._probe()
        return self._version

    @property
    def parents(self) -> list[Path]:
        """The group(s) calls are made under (empty without a usable hierarchy)."""
        self._probe()
        return list(self._parents)

    @property
    def reason(self) -> str:
        """Why no hierarchy is usable (empty when one is)."""
        self._probe()
        return self._reason

    def create(self, *, memory_mb: int, max_processes: int) -> CallGroup | None:
        self._probe()
        if self._version is None:
            return None
        with self._lock:
            self._count += 1
            name = f"{os.getpid()}-{self._count}-{random.getrandbits(24):06x}"
        dirs = [parent / name for parent in self._parents]
        try:
            for d in dirs:
                d.mkdir()
            _write_limits(self._version, dirs, memory_mb * 2**20, max_processes)
        except OSError as exc:
            CallGroup(self._version, dirs).remove()
            raise RuntimeError(f"could not set up the sandbox's cgroup: {exc}") from exc
        return CallGroup(self._version, dirs)

    def _probe(self) -> None:
        with self._lock:
            if self._probed:
                return
            self._probed = True
            reasons = []
            for version, parents in ((2, self._v2_parents()), (1, self._v1_parents())):
                problem = _unusable(version, parents) if parents else f"no cgroup v{version} hierarchy here"
                if problem is None:
                    self._version, self._parents = version, parents
                    return
                reasons.append(problem)
            self._reason = "; ".join(reasons)
        warnings.warn(
            "python sandbox: no writable cgroup (v1 memory+pids or v2 with those controllers); the memory "
            f"of a call's processes together is not capped, so each call gets at most {FALLBACK_MAX_PROCESSES} "
            f"processes instead. Why: {self._reason}. In a container: /sys/fs/cgroup must be writable "
            "(Docker `privileged: true` or `cgroupns: private` with the entry point's delegation, Kubernetes "
            "`privileged: true`); see docs/deploy.md",
            RuntimeWarning,
            stacklevel=3,
        )

    def _own_path(self, controller: str) -> str | None:
        """This process's cgroup path in a v1 controller's hierarchy, or in v2's (controller "")."""
        try:
            lines = self.proc_cgroup.read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if (controller == "" and controllers == "") or controller in controllers.split(","):
                return path
        return None

    def _v1_parents(self) -> list[Path]:
        parents = []
        for controller in ("memory", "pids"):
            own = self._own_path(controller)
            mount = self.root / controller
            if own is None or not (mount / "cgroup.procs").is_file():
                return []
            parents.append(mount / own.lstrip("/") / GROUP_PARENT)
        return parents

    def _v2_parents(self) -> list[Path]:
        controllers = self.root / "cgroup.controllers"
        own = self._own_path("")
        if own is None or not controllers.is_file():
            return []
        if not {"memory", "pids"} <= set(controllers.read_text().split()):
            return []
        explicit = os.environ.get(PARENT_ENV)
        if explicit:
            return [self.root / explicit.strip("/")]
        return [self.root / own.lstrip("/") / GROUP_PARENT]


_ERRNO_MEANING = {
    errno.EROFS: "the cgroup filesystem is mounted read-only",
    errno.EBUSY: "the group holds processes, and cgroup v2 hands controllers only to groups without any "
    "(set ARPO_SANDBOX_CGROUP to a delegated group)",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "missing",
}


def _unusable(version: int, parents: list[Path]) -> str | None:
    """Make the parent group(s) and one test group with limits; what was refused, or None when all worked."""
    try:
        _make_parents(version, parents)
    except OSError as exc:
        why = _ERRNO_MEANING.get(exc.errno or 0, exc.strerror or str(exc))
        return f"cgroup v{version}: {exc.filename or parents[0]}: {why}"
    return None


def _make_parents(version: int, parents: list[Path]) -> None:
    for parent in parents:
        parent.mkdir(exist_ok=True)
        _sweep(parent)
    if version == 2:
        # Limits apply to children only once each level delegates the controllers. The level above our
        # parent refuses (EBUSY) when it holds processes, as the worker's own group does: the kernel
        # exempts only the real root. Then this host gets the rlimit fallback, unless ARPO_SANDBOX_CGROUP
        # names a parent whose level was delegated (the image's entry point does that). Ours holds none.
        own = parents[0].parent
        if not {"memory", "pids"} <= set((own / "cgroup.subtree_control").read_text().split()):
            (own / "cgroup.subtree_control").write_text("+memory +pids")
        (parents[0] / "cgroup.subtree_control").write_text("+memory +pids")
    probe = [p / f"probe-{os.getpid()}" for p in parents]
    for d in probe:
        d.mkdir(exist_ok=True)
    try:
        _write_limits(version, probe, 64 * 2**20, 8)
    finally:
        CallGroup(version, probe).remove()


def _sweep(parent: Path) -> None:
    """Remove groups left by a crashed process (only empty ones can be removed, so live calls stay)."""
    for child in parent.iterdir():
        if child.is_dir():
            with suppress(OSError):
                child.rmdir()


def _write_limits(version: int, dirs: list[Path], memory_bytes: int, max_processes: int) -> None:
    if version == 1:
        memory, pids = dirs
        (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
        swap = memory / "memory.memsw.limit_in_bytes"
        if swap.exists():  # memory + swap: no swapping past the cap
            swap.write_text(str(memory_bytes))
        (pids / "pids.max").write_text(str(max_processes))
    else:
        (group,) = dirs
        (group / "memory.max").write_text(str(memory_bytes))
        swap = group / "memory.swap.max"
        if swap.exists():
            swap.write_text("0")
        (group / "pids.max").write_text(str(max_processes))


def _field(path: Path, name: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name:
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


CGROUPS = Cgroups()


# ---------------------------------------------------------------------------------------------
# Host-wide cap on concurrent sandboxes


def max_concurrent_sandboxes() -> int:
    """`$ARPO_SANDBOX_MAX_CONCURRENT`, else twice the CPU count (a call is mostly interpreter start-up)."""
    value = os.environ.get(MAX_CONCURRENT_ENV)
    if value:
        return max(1, int(value))
    return max(2, 2 * (os.cpu_count() or 1))


def slot_dir() -> Path:
    value = os.environ.get(SLOT_DIR_ENV)
    if value:
        return Path(value)
    run = Path("/run")
    return (run if os.access(run, os.W_OK) else Path("/tmp")) / "arpo-sandbox-slots"


class HostSlots:
    """At most `count` sandboxes at once on this host, across processes: flock on `count` slot files."""

    def __init__(self, count: int | None = None, directory: Path | None = None) -> None:
        self._count, self._directory = count, directory

    @contextmanager
    def hold(self) -> Iterator[int]:
        """Wait for a free slot (a burst queues here); yields its index."""
        count = self._count or max_concurrent_sandboxes()
        directory = self._directory or slot_dir()
        directory.mkdir(parents=True, exist_ok=True)
        order = list(range(count))
        delay = 0.001
        while True:
            random.shuffle(order)  # spread the waiters over the slots
            for index in order:
                fd = os.open(directory / f"slot-{index}.lock", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                try:
                    yield index
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
                return
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.05)


HOST_SLOTS = HostSlots()
