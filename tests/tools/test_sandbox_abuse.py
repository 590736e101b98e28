"""The sandbox under abuse: memory of a whole call capped by its cgroup, namespaces and the keyring closed by
seccomp, bursts queued by a host-wide cap; each attempt is contained and the model reads what happened."""

from __future__ import annotations

import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from arpo_engine.tools import seccomp
from arpo_engine.tools.python_sandbox import PythonTool, SandboxLimits, sandbox_argv
from arpo_engine.tools.sandbox_limits import CGROUPS, Cgroups, HostSlots

LIBC = "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
EPERM = 1


@pytest.fixture(scope="module")
def python() -> PythonTool:
    return PythonTool(limits=SandboxLimits(timeout_s=20))


def syscall_result(python: PythonTool, call: str) -> tuple[int, int]:
    """(return value, errno) of a libc call made inside the sandbox."""
    result = python.run({"code": LIBC + f"print({call}, ctypes.get_errno())"})
    assert result.error is None, result.output
    value, errno = result.output.split()
    return int(value), int(errno)


@pytest.mark.skipif(CGROUPS.version is None, reason="no writable cgroup on this host (the fallback is tested below)")
def test_twelve_processes_of_400_mb_are_held_to_the_calls_memory_cap(python: PythonTool) -> None:
    code = """
import os, time
pids = []
for i in range(12):
    pid = os.fork()
    if pid == 0:
        block = bytearray(400 * 2**20)
        for j in range(0, len(block), 4096):
            block[j] = 1
        time.sleep(0.5)
        os._exit(0)
    pids.append(pid)
print(sum(os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) == -9 for p in pids), "killed")
"""
    result = python.run({"code": code})
    assert result.error == "memory_total"
    assert result.details["oom_kills"] >= 9  # at most two 400 MB processes fit in 1024 MB
    assert result.details["peak_memory_mb"] <= 1024 + 1
    assert "[killed: the call's processes together went over 1024 MB; the kernel killed" in result.output
    assert python.run({"code": "print('still fine')"}).output == "still fine"


def test_unshare_of_a_user_namespace_is_refused(python: PythonTool) -> None:
    assert syscall_result(python, "libc.unshare(0x10000000)") == (-1, EPERM)  # CLONE_NEWUSER


def test_clone_into_a_new_user_namespace_is_refused_while_fork_works(python: PythonTool) -> None:
    assert syscall_result(python, "libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0)") == (-1, EPERM)
    fork = python.run({"code": "import os\npid = os.fork()\nif pid == 0:\n    os._exit(3)\nprint(os.waitpid(pid, 0)[1] >> 8)"})
    assert fork.output == "3"


@pytest.mark.parametrize(
    "call",
    [
        "libc.syscall(250, 0, -3, 0)",  # keyctl(KEYCTL_GET_KEYRING_ID, session keyring)
        "libc.syscall(248, b'user', b'k', b'v', 1, -3)",  # add_key into the session keyring
        "libc.syscall(101, 16, 1, 0, 0)",  # ptrace(PTRACE_ATTACH, pid 1)
        "libc.syscall(165, b'none', b'/scratch', b'tmpfs', 0, 0)",  # mount
        "libc.syscall(321, 0, 0, 0)",  # bpf
        "libc.syscall(298, 0, 0, -1, -1, 0)",  # perf_event_open
        "libc.syscall(323, 0)",  # userfaultfd
        "libc.syscall(313, 0, b'', 0)",  # finit_module
    ],
    ids=["keyctl", "add_key", "ptrace", "mount", "bpf", "perf_event_open", "userfaultfd", "finit_module"],
)
def test_calls_that_reach_past_the_sandbox_fail_with_eperm(python: PythonTool, call: str) -> None:
    assert syscall_result(python, call) == (-1, EPERM)


# --- the filter itself, run by a small classic-BPF interpreter ---------------------------------------------


def run_filter(program: bytes, nr: int, arch: int, arg0: int = 0) -> int:
    data = struct.pack("<iIQ6Q", nr, arch, 0, arg0, 0, 0, 0, 0, 0)
    insns = [struct.unpack("<HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x06:
            return k
        else:
            taken = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if taken else jf
        pc += 1


@pytest.mark.parametrize("machine", sorted(seccomp.ARCHES))
def test_the_filter_allows_ordinary_calls_and_refuses_the_listed_ones(machine: str) -> None:
    arch = seccomp.ARCHES[machine]
    program = seccomp.build_filter(arch)
    errno = 0x0005_0000
    for name, nr in arch.blocked.items():
        assert run_filter(program, nr, arch.audit_arch) == errno | EPERM, name
    for nr in (0, 1, 3, 9, 39, 60):  # read, write, close, mmap, getpid, exit on x86_64; harmless elsewhere too
        if nr not in arch.blocked.values():
            assert run_filter(program, nr, arch.audit_arch) == seccomp.RET_ALLOW
    assert run_filter(program, arch.clone, arch.audit_arch, arg0=0x01200011) == seccomp.RET_ALLOW  # fork's flags
    assert run_filter(program, arch.clone, arch.audit_arch, arg0=0x10000011) == errno | EPERM  # CLONE_NEWUSER
    assert run_filter(program, arch.clone3, arch.audit_arch) == errno | 38  # ENOSYS: libc falls back to clone
    assert run_filter(program, 0, 0x4000_0003) == seccomp.RET_KILL_PROCESS  # 32-bit x86 calls
    if arch.x32:
        assert run_filter(program, 0x4000_0000 + 250, arch.audit_arch) == errno | EPERM


# --- host-wide cap on concurrent sandboxes -------------------------------------------------------------------


def test_a_burst_of_calls_queues_for_the_host_slots(tmp_path: Path) -> None:
    slots = HostSlots(count=2, directory=tmp_path)
    running, peak, lock = 0, 0, threading.Lock()

    def call(_: int) -> None:
        nonlocal running, peak
        with slots.hold():
            with lock:
                running += 1
                peak = max(peak, running)
            time.sleep(0.05)
            with lock:
                running -= 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(call, range(8)))
    assert peak == 2


def test_eight_parallel_sandboxes_under_a_cap_of_two_all_succeed(python: PythonTool, monkeypatch) -> None:
    monkeypatch.setenv("ARPO_SANDBOX_MAX_CONCURRENT", "2")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: python.run({"code": f"print({i} * 2)"}), range(8)))
    assert [r.output for r in results] == [str(i * 2) for i in range(8)]


# --- cgroup v1 / v2 set-up, and the fallback without one -------------------------------------------------------


def fake_v2(root: Path) -> Path:
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    own = root / "worker"
    own.mkdir()
    (own / "cgroup.subtree_control").write_text("")
    proc = root / "proc-cgroup"
    proc.write_text("0::/worker\n")
    return proc


def test_cgroup_v2_groups_get_memory_max_pids_max_and_no_swap(tmp_path: Path) -> None:
    groups = Cgroups(root=tmp_path, proc_cgroup=fake_v2(tmp_path))
    assert groups.version == 2
    assert (tmp_path / "worker" / "cgroup.subtree_control").read_text() == "+memory +pids"
    group = groups.create(memory_mb=1024, max_processes=34)
    assert group is not None and group.dirs[0].parent == tmp_path / "worker" / "arpo-sandbox"
    d = group.dirs[0]
    assert (d / "memory.max").read_text() == str(1024 * 2**20) and (d / "pids.max").read_text() == "34"
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\n")
    (d / "memory.peak").write_text(str(700 * 2**20))
    report = group.report()
    assert (report.oom_kills, report.peak_memory_mb) == (2, 700.0)


def test_cgroup_v1_groups_nest_under_this_processs_memory_and_pids_groups(tmp_path: Path) -> None:
    for controller in ("memory", "pids"):
        (tmp_path / controller / "worker").mkdir(parents=True)
        (tmp_path / controller / "cgroup.procs").write_text("")
    proc = tmp_path / "proc-cgroup"
    proc.write_text("8:pids:/worker\n4:memory:/worker\n0::/\n")
    groups = Cgroups(root=tmp_path, proc_cgroup=proc)
    assert groups.version == 1
    group = groups.create(memory_mb=512, max_processes=10)
    assert group is not None
    memory, pids = group.dirs
    assert memory.parent == tmp_path / "memory" / "worker" / "arpo-sandbox"
    assert (memory / "memory.limit_in_bytes").read_text() == str(512 * 2**20)
    assert (pids / "pids.max").read_text() == "10"


def test_without_a_writable_cgroup_the_sandbox_says_so_once_and_tightens_the_process_cap(tmp_path: Path) -> None:
    proc = tmp_path / "proc-cgroup"
    proc.write_text("0::/\n")
    groups = Cgroups(root=tmp_path / "absent", proc_cgroup=proc)
    with pytest.warns(RuntimeWarning, match="no writable cgroup") as record:
        assert groups.create(memory_mb=1024, max_processes=34) is None
        assert groups.create(memory_mb=1024, max_processes=34) is None
    assert len(record) == 1
    argv = sandbox_argv("print(1)", SandboxLimits(), uid=60_000, info_fd=3, cgroup=False)
    assert "--nproc=8" in argv and "--nproc=32" in sandbox_argv("print(1)", SandboxLimits(), uid=60_000, info_fd=3)
