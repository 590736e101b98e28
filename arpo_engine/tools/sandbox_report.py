"""What a sandboxed Python run may use, what it did, and how that is reported to the model.

`SandboxLimits` are the python tool's options; `SandboxRun` is the raw outcome of one process tree;
`classify` names how it ended (timeout, memory, process limit, output limit, crash …) and `observe`
turns it into the `ToolResult` the model reads: stdout, the tail of stderr, and a one-line note.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from arpo_engine.tools.base import ToolResult

STDERR_TAIL_BYTES = 4_000


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0
    """Wall-clock seconds before the whole sandbox is killed."""
    cpu_s: float | None = None
    """CPU seconds per process (RLIMIT_CPU); defaults to `timeout_s`."""
    memory_mb: int = 512
    """Address space per process (RLIMIT_AS), in MiB."""
    total_memory_mb: int = 1024
    """Memory of all the call's processes together (its cgroup, no swap beyond it), in MiB."""
    max_processes: int = 32
    """Processes and threads the call may have at once (its cgroup's pids.max and the uid's RLIMIT_NPROC)."""
    max_output_bytes: int = 16_384
    """stdout + stderr bytes read before the sandbox is killed and the output cut."""
    scratch_mb: int = 64
    """Size of the /scratch tmpfs, and the largest file a process may write (RLIMIT_FSIZE), in MiB."""
    max_open_files: int = 64
    """Open file descriptors per process (RLIMIT_NOFILE)."""

    def __post_init__(self) -> None:
        for name in ("timeout_s", "memory_mb", "total_memory_mb", "max_processes", "max_output_bytes", "scratch_mb"):
            if getattr(self, name) <= 0:
                raise ValueError(f"python tool option {name} must be positive, got {getattr(self, name)!r}")
        if self.cpu_s is not None and self.cpu_s <= 0:
            raise ValueError(f"python tool option cpu_s must be positive, got {self.cpu_s!r}")
        if self.max_open_files < 16:
            raise ValueError("python tool option max_open_files must be at least 16")

    @property
    def cpu_seconds(self) -> int:
        return max(1, round(self.cpu_s if self.cpu_s is not None else self.timeout_s))


@dataclass(frozen=True)
class SandboxRun:
    """What one sandboxed process did, before it is turned into an observation."""

    stdout: bytes
    stderr: bytes
    exit_code: int | None
    timed_out: bool
    output_exceeded: bool
    elapsed_s: float
    oom_kills: int = 0
    """Processes the kernel killed because the call's processes together exceeded `total_memory_mb`."""
    peak_memory_mb: float | None = None
    """Peak memory of the call's cgroup; None without one."""


_SANDBOX_SETUP_PREFIXES = (b"bwrap:", b"prlimit:", b"setpriv:")
_SIGNAL_EXIT_BASE = 128  # bwrap exits with 128 + N when its command dies of signal N


def classify(run: SandboxRun, limits: SandboxLimits) -> str | None:
    """The machine-readable error of a run, or None when it succeeded."""
    if run.timed_out:
        return "timeout"
    if run.oom_kills:  # contained, even when the program itself survived the loss of a child
        return "memory_total"
    if run.exit_code == 0:
        return None
    # Tracebacks name the limit that was hit better than the exit code can.
    if b"BlockingIOError" in run.stderr or b"can't start new thread" in run.stderr:
        return "process_limit"
    if b"MemoryError" in run.stderr:
        return "memory"
    if run.output_exceeded:
        return "output_limit"
    if run.stderr.startswith(_SANDBOX_SETUP_PREFIXES):
        return "sandbox"
    if _hit_cpu_limit(run, limits):
        return "timeout"
    if run.exit_code is not None and run.exit_code > _SIGNAL_EXIT_BASE:
        return "crash"
    return "exit_code"


def _hit_cpu_limit(run: SandboxRun, limits: SandboxLimits) -> bool:
    # RLIMIT_CPU ends pid 1 with SIGKILL. CPU time grows at most (cores x wall time), so an earlier
    # SIGKILL was something else: the OOM killer.
    killed = run.exit_code == _SIGNAL_EXIT_BASE + signal.SIGKILL
    return killed and run.elapsed_s * (os.cpu_count() or 1) >= limits.cpu_seconds


def _note(error: str | None, run: SandboxRun, limits: SandboxLimits) -> str:
    if error == "timeout" and _hit_cpu_limit(run, limits):
        return f"[killed: used more than {limits.cpu_seconds} s of CPU time]"
    code = run.exit_code if run.exit_code is not None else -1
    notes = {
        None: "",
        "timeout": f"[killed: still running after {limits.timeout_s:g} s]",
        "process_limit": f"[error: process limit reached, at most {limits.max_processes} processes]",
        "memory": f"[error: out of memory, the limit is {limits.memory_mb} MB]",
        "memory_total": (
            f"[killed: the call's processes together went over {limits.total_memory_mb} MB; the kernel killed "
            f"{run.oom_kills} of them]"
        ),
        "output_limit": f"[killed: output exceeded {limits.max_output_bytes} bytes, cut here]",
        "sandbox": "[error: the sandbox failed to start]",
        "crash": f"[crashed: {_signal_name(code - _SIGNAL_EXIT_BASE)}]",
        "exit_code": f"[exit code {code}]",
    }
    return notes[error]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def observe(run: SandboxRun, limits: SandboxLimits, *, latency_ms: float) -> ToolResult:
    """stdout first, then the tail of stderr, then a one-line note on how the run ended."""
    error = classify(run, limits)
    stdout = run.stdout[: limits.max_output_bytes].decode("utf-8", errors="replace")
    tail_bytes = min(STDERR_TAIL_BYTES, limits.max_output_bytes)
    stderr = run.stderr[-tail_bytes:].decode("utf-8", errors="replace")
    parts = [p.rstrip("\n") for p in (stdout, stderr, _note(error, run, limits)) if p.strip()]
    output = "\n".join(parts) if parts else "(no output: use print() to show values)"
    cut = len(run.stdout) > limits.max_output_bytes or len(run.stderr) > tail_bytes
    truncated = run.output_exceeded or cut
    details = {
        "exit_code": run.exit_code,
        "elapsed_s": round(run.elapsed_s, 4),
        "stdout_bytes": len(run.stdout),
        "stderr_bytes": len(run.stderr),
        "oom_kills": run.oom_kills,
        "peak_memory_mb": round(run.peak_memory_mb, 1) if run.peak_memory_mb is not None else None,
    }
    return ToolResult(output=output, error=error, latency_ms=latency_ms, truncated=truncated, details=details)
