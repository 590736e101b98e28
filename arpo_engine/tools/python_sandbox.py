"""The `python` tool: model-written code run in a bubblewrap sandbox (ARPO_SPEC.md §1, PRODUCT.md Tools).

The official ARPO code runs the model's Python in a plain subprocess although the paper claims a
sandbox; this tool really isolates it. Each call gets:

- bwrap as root with fresh net, pid, ipc, uts and cgroup namespaces: no network, no host processes;
- a root made of read-only binds of /usr (and /lib, /lib64, /bin, /sbin or their symlinks) plus new
  /proc and /dev; nothing of the host's /etc, /root, /home, /work or /tmp is visible;
- a fresh size-capped tmpfs at /scratch as cwd, HOME and TMPDIR, gone when the call ends;
- rlimits (address space, CPU seconds, processes, file size, open files, no core dumps) set by
  `prlimit`, then `setpriv` drops to an unprivileged uid with no capabilities and no_new_privs;
- its own cgroup capping the memory and the number of processes of the whole call (`sandbox_limits`);
- a seccomp filter against namespaces, mounts, the keyring, ptrace, bpf, perf events, userfaultfd,
  module loading and kexec (`seccomp`), so what the sandbox keeps out stays out;
- a host-wide cap on sandboxes running at once: a burst of calls queues (`sandbox_limits.HOST_SLOTS`);
- a wall-clock timeout and an output byte cap enforced here, both killing the whole pid namespace.

Why no user namespace: root inside one maps to host root, and root is exempt from RLIMIT_NPROC, so a
fork bomb would not be stopped. Why a uid per concurrent call: RLIMIT_NPROC counts every process of
a uid on the host, so sandboxes sharing one uid would eat each other's process budget. Why the
interpreter is pid 1 (`--as-pid-1`): see `_NamespaceHandle`. /dev/shm is read-only, so
`multiprocessing` locks are unavailable.

Every failure comes back as a `ToolResult` with `error` set; `run` never raises. How a run is reported
(and the limits' options) lives in `sandbox_report`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import queue
import random
import selectors
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from arpo_engine.tools import sandbox_check, seccomp
from arpo_engine.tools.base import ToolResult, function_schema
from arpo_engine.tools.sandbox_limits import CGROUPS, FALLBACK_MAX_PROCESSES, HOST_SLOTS, CallGroup
from arpo_engine.tools.sandbox_report import SandboxLimits, SandboxRun, observe

__all__ = ["PythonTool", "SandboxLimits", "SandboxRun", "check_sandbox_prerequisites", "run_sandboxed"]

BWRAP = "/usr/bin/bwrap"
SETPRIV = "/usr/bin/setpriv"
PRLIMIT = "/usr/bin/prlimit"
INTERPRETER = "/usr/bin/python3"
SCRATCH = "/scratch"

# Sandbox uids: below 61184 (systemd's DynamicUser range) and below 65536, so they exist in the
# uid map of a typical rootless container too. Nothing on the host owns files under these uids.
UID_FIRST = 60_000
UID_COUNT = 1_000

# Linux caps one argv string at 128 KiB (MAX_ARG_STRLEN); the code travels as one.
MAX_CODE_BYTES = 100_000
KILL_GRACE_S = 5.0

DEFAULT_DESCRIPTION = (
    "Run a Python 3 program in a fresh sandbox and return what it prints. No network and no files "
    "from earlier calls. The value of a bare final expression is printed. Use print() for results."
)

# Runs inside the sandbox as the interpreter's `-c` program; the user code is argv[1]. It keeps
# tracebacks free of its own frames, shows source lines in them, and prints the value of a bare
# last expression like a notebook cell would (the paper's python tool shows it too).
_RUNNER = r"""
import sys
import _ast as ast  # the C module: `ast`, `linecache` and `traceback` cost ~18 ms of imports per call
try:  # if the host runs out of memory, the kernel should kill sandbox code first
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")
except OSError:
    pass
src = sys.argv[1]
sys.argv = ["main.py"]
fn = "main.py"
env = {"__name__": "__main__", "__file__": fn, "__builtins__": __builtins__}
try:
    tree = compile(src, fn, "exec", ast.PyCF_ONLY_AST)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, fn, "exec"), env)
    if last is not None:
        value = eval(compile(last, fn, "eval"), env)
        if value is not None:
            print(repr(value))
except SystemExit:
    raise
except BaseException as exc:
    import linecache, traceback  # only now: a traceback shows the code's own lines from this cache
    linecache.cache[fn] = (len(src), None, src.splitlines(True), fn)
    # A SyntaxError's own message points at the line; the frames above it are the runner's.
    syntax = isinstance(exc, SyntaxError)
    tb = None if syntax or exc.__traceback__ is None else exc.__traceback__.tb_next
    traceback.print_exception(type(exc), exc, tb)
    sys.exit(1)
"""


class PythonTool:
    """`kind: python`. Thread-safe: each call is its own sandbox with its own uid."""

    primary_argument = "code"

    def __init__(
        self,
        name: str = "python",
        *,
        limits: SandboxLimits | None = None,
        description: str | None = None,
        schema: Mapping[str, Any] | None = None,
    ) -> None:
        check_sandbox_prerequisites()
        self.name = name
        self.limits = limits or SandboxLimits()
        self._description = description or DEFAULT_DESCRIPTION
        self._schema = schema

    def schema(self) -> dict[str, Any]:
        if self._schema is not None:
            return copy.deepcopy(dict(self._schema))
        code = {"type": "string", "description": "Python 3 source code to run."}
        return function_schema(self.name, self._description, {"code": code}, ["code"])

    def run(self, arguments: Mapping[str, Any]) -> ToolResult:
        started = time.perf_counter()
        code = arguments.get(self.primary_argument)
        problem = _argument_problem(code)
        if problem is not None:
            return ToolResult(output=problem, error="bad_arguments")
        assert isinstance(code, str)
        try:
            result = run_sandboxed(strip_code_fences(code), self.limits)
        except Exception as exc:  # e.g. bwrap could not be started: report, never raise into the loop
            return ToolResult(output=f"The sandbox failed to start: {exc}", error="sandbox")
        return observe(result, self.limits, latency_ms=(time.perf_counter() - started) * 1000)


def check_sandbox_prerequisites(bwrap: str = BWRAP) -> None:
    """Fail at construction, naming what is missing and the fix, rather than on every call.

    After the binaries and root, the sandbox's own command line runs once per process (`sandbox_check`):
    a container without the privileges bwrap needs fails here with the one that is missing.
    """
    if not os.access(bwrap, os.X_OK):
        raise RuntimeError(
            f"The python tool needs bubblewrap at {bwrap}: apt-get install bubblewrap "
            "(the service image installs it; see docs/deploy.md)"
        )
    for tool in (SETPRIV, PRLIMIT, INTERPRETER):
        if not os.access(tool, os.X_OK):
            raise RuntimeError(f"The python tool needs {tool} (util-linux / python3 system packages)")
    if os.geteuid() != 0:
        # Only root can both skip the user namespace and switch to the sandbox uid (module docstring).
        raise RuntimeError(
            "The python tool's sandbox must be started as root; it drops privileges itself (to a uid of its "
            "own per call). In a container: Docker `user: root`, Kubernetes `runAsUser: 0` for the worker"
        )
    if bwrap not in _PROBED:
        problem = _probe(bwrap)
        if problem is not None:
            raise RuntimeError(problem)
        _PROBED.add(bwrap)


_PROBED: set[str] = set()  # bwrap paths whose start-up check passed in this process


def _probe(bwrap: str) -> str | None:
    """The sandbox's real command line on a trivial program, once: None when it starts, else why not."""
    filter_read = seccomp.filter_fd()
    with _UIDS.lease() as uid, open(os.devnull, "wb") as info:
        info_fd = info.fileno()
        argv = sandbox_argv("pass", SandboxLimits(), uid=uid, info_fd=info_fd, seccomp_fd=filter_read)
        argv[0] = bwrap
        fds = (info_fd,) if filter_read is None else (info_fd, filter_read)
        try:
            return sandbox_check.probe(argv, pass_fds=fds)
        finally:
            if filter_read is not None:
                os.close(filter_read)


def strip_code_fences(code: str) -> str:
    """Models often wrap code in ```python fences even inside a <python> tag."""
    text = code.strip()
    if not text.startswith("```"):
        return code
    lines = text.split("\n")
    body = lines[1:]
    if body and body[-1].strip() == "```":
        body = body[:-1]
    return "\n".join(body)


def _argument_problem(code: Any) -> str | None:
    if not isinstance(code, str):
        return "The python tool needs a `code` argument holding Python source as a string."
    if not code.strip():
        return "The python tool got empty code; write the program to run."
    if "\x00" in code:
        return "The code contains a NUL character, which Python source cannot contain."
    if len(code.encode()) > MAX_CODE_BYTES:
        return f"The code is longer than {MAX_CODE_BYTES} bytes; shorten it."
    return None


# ---------------------------------------------------------------------------------------------
# Running one sandbox


def run_sandboxed(code: str, limits: SandboxLimits) -> SandboxRun:
    """Run `code` under /usr/bin/python3 in a new sandbox and collect its capped output."""
    with HOST_SLOTS.hold(), _UIDS.lease() as uid:
        # +2: bwrap and its child outside the uid's count; RLIMIT_NPROC stays the binding per-uid cap
        group = CGROUPS.create(memory_mb=limits.total_memory_mb, max_processes=limits.max_processes + 2)
        try:
            run = _run_in(group, code, limits, uid)
            if group is None:
                return run
            report = group.report()  # the namespace is gone: every process of the call has been counted
            return dataclasses.replace(run, oom_kills=report.oom_kills, peak_memory_mb=report.peak_memory_mb)
        finally:
            if group is not None:
                group.remove()


def _run_in(group: CallGroup | None, code: str, limits: SandboxLimits, uid: int) -> SandboxRun:
    info_read, info_write = os.pipe()
    # bwrap's sandbox child waits on this pipe until it is in the call's cgroup (see below)
    block_read, block_write = os.pipe()
    filter_read = seccomp.filter_fd()
    fds = (info_write, block_read) if filter_read is None else (info_write, block_read, filter_read)
    argv = sandbox_argv(
        code, limits, uid=uid, info_fd=info_write, seccomp_fd=filter_read, cgroup=group is not None,
        block_fd=block_read,
    )  # fmt: skip
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=fds,
            start_new_session=True,
            env={"PATH": "/usr/bin:/bin"},
        )
    except BaseException:
        os.close(info_read)
        os.close(block_write)
        raise
    finally:
        for fd in fds:
            os.close(fd)
    with proc, _NamespaceHandle(proc, info_read) as namespace:
        try:
            if group is not None and namespace.child_pid is not None:
                # bwrap and its child, blocked before running anything of the sandbox's, join the call's
                # cgroup; everything the sandbox starts is born inside. (Cheaper than a joining shell.)
                group.join([proc.pid, namespace.child_pid])
        except OSError:
            namespace.kill()  # never let it run outside its cgroup
            raise
        finally:
            with suppress(OSError):
                os.write(block_write, b"x")
            os.close(block_write)
        return _collect(proc, namespace, limits, started)


def sandbox_argv(
    code: str,
    limits: SandboxLimits,
    *,
    uid: int,
    info_fd: int,
    seccomp_fd: int | None = None,
    cgroup: bool = True,
    block_fd: int | None = None,
) -> list[str]:
    """bwrap -> prlimit -> setpriv -> python3; see the module docstring for why each step.

    Without a cgroup (`cgroup=False`) nothing caps the call's total memory, so the process cap
    tightens to FALLBACK_MAX_PROCESSES (`sandbox_limits`).
    """
    scratch_bytes = limits.scratch_mb * 1024 * 1024
    memory_bytes = limits.memory_mb * 1024 * 1024
    processes = limits.max_processes if cgroup else min(limits.max_processes, FALLBACK_MAX_PROCESSES)
    return [
        BWRAP,
        *_root_filesystem(),
        "--proc", "/proc",
        "--dev", "/dev",
        "--perms", "1777", "--size", str(scratch_bytes), "--tmpfs", SCRATCH,
        "--chdir", SCRATCH,
        "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--hostname", "sandbox",
        "--die-with-parent", "--new-session", "--as-pid-1",
        "--clearenv",
        "--setenv", "PATH", "/usr/bin:/bin",
        "--setenv", "HOME", SCRATCH,
        "--setenv", "TMPDIR", SCRATCH,
        "--setenv", "LANG", "C.UTF-8",
        "--info-fd", str(info_fd),
        *(["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []),
        *(["--block-fd", str(block_fd)] if block_fd is not None else []),
        PRLIMIT,
        f"--as={memory_bytes}",
        # Soft = hard: pid 1 ignores SIGXCPU, so the limit must be the kernel's SIGKILL.
        f"--cpu={limits.cpu_seconds}",
        f"--nproc={processes}",
        f"--fsize={scratch_bytes}",
        f"--nofile={limits.max_open_files}",
        "--core=0",
        "--",
        SETPRIV,
        f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
        "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs",
        "--",
        INTERPRETER, "-I", "-B", "-u", "-c", _RUNNER, code,
    ]  # fmt: skip


def _root_filesystem() -> list[str]:
    """Read-only /usr; /lib, /lib64, /bin, /sbin as the host has them (merged-/usr symlinks or dirs)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/lib", "/lib64", "/bin", "/sbin"):
        path = Path(top)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), top]
        elif path.is_dir():
            args += ["--ro-bind", top, top]
    return args


class _UidPool:
    """Hands each running sandbox its own uid; blocks when all are in use."""

    def __init__(self, first: int, count: int) -> None:
        uids = list(range(first, first + count))
        # Shuffled so two worker processes on one host rarely pick the same uid at the same time.
        random.Random(os.getpid() ^ time.monotonic_ns()).shuffle(uids)
        self._free: queue.Queue[int] = queue.Queue()
        for uid in uids:
            self._free.put(uid)

    @contextmanager
    def lease(self) -> Iterator[int]:
        uid = self._free.get()
        try:
            yield uid
        finally:
            self._free.put(uid)


_UIDS = _UidPool(UID_FIRST, UID_COUNT)


class _NamespaceHandle:
    """The sandbox's pid 1 (the interpreter, thanks to --as-pid-1), pinned by a pidfd.

    When pid 1 of a pid namespace dies, the kernel kills and reaps everything inside before pid 1
    becomes a zombie, and bwrap exits only after reaping pid 1: so once bwrap has exited, no sandbox
    process is left and the uid is free. (bwrap's own init would break this: bwrap exits as soon as
    the command does, while init and the namespace are torn down later.) Killing through the pidfd
    can never hit a recycled pid.
    """

    def __init__(self, proc: subprocess.Popen[bytes], info_read: int) -> None:
        self._proc = proc
        child = _read_child_pid(info_read)
        self._pidfd = _open_child_pidfd(child, proc.pid) if child is not None else None
        self.child_pid = child if self._pidfd is not None else None

    def __enter__(self) -> _NamespaceHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc.poll() is None:
            self.kill()
        try:
            self._proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        if self._pidfd is not None:
            os.close(self._pidfd)

    def kill(self) -> None:
        if self._pidfd is not None:
            with suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        else:  # no pidfd means pid 1 was already reaped: only bwrap can be left
            with suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)


def _read_child_pid(info_read: int) -> int | None:
    """bwrap writes {"child-pid": N} to --info-fd right after cloning, then closes it (EOF)."""
    with os.fdopen(info_read, "rb") as info:
        data = info.read()
    try:
        pid = json.loads(data)["child-pid"]
    except (ValueError, KeyError, TypeError):
        return None
    return pid if isinstance(pid, int) and pid > 1 else None


def _open_child_pidfd(pid: int, parent: int) -> int | None:
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None  # already gone
    # Checked after opening: if `pid` is still bwrap's child now, the pidfd pins that very process.
    if _parent_pid(pid) != parent:
        os.close(pidfd)
        return None
    return pidfd


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in field 2 may contain spaces and parentheses; fields after the last ")" don't.
    return int(stat.rsplit(")", 1)[1].split()[1])


def _collect(
    proc: subprocess.Popen[bytes], namespace: _NamespaceHandle, limits: SandboxLimits, started: float
) -> SandboxRun:
    """Read stdout/stderr until EOF, the byte cap or the deadline, killing the sandbox on the latter two."""
    assert proc.stdout is not None and proc.stderr is not None
    buffers: dict[int, bytearray] = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    deadline = started + limits.timeout_s
    timed_out = exceeded = False
    sel = selectors.DefaultSelector()
    for fd in buffers:
        sel.register(fd, selectors.EVENT_READ)
    try:
        while sel.get_map() and not exceeded:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in sel.select(timeout=remaining):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fd)
                    continue
                buffers[key.fd] += chunk
            exceeded = sum(len(b) for b in buffers.values()) > limits.max_output_bytes
    finally:
        sel.close()
    exit_code = None
    if not (timed_out or exceeded):
        # Pipes at EOF, yet a process may live on with them closed: it still gets the deadline.
        exit_code = _wait_until(proc, deadline)
        timed_out = exit_code is None
    if exit_code is None:
        namespace.kill()  # the `with` block in run_sandboxed waits until the namespace is gone
    return SandboxRun(
        stdout=bytes(buffers[proc.stdout.fileno()]),
        stderr=bytes(buffers[proc.stderr.fileno()]),
        exit_code=exit_code,
        timed_out=timed_out,
        output_exceeded=exceeded,
        elapsed_s=time.monotonic() - started,
    )


def _wait_until(proc: subprocess.Popen[bytes], deadline: float) -> int | None:
    try:
        return proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return None
