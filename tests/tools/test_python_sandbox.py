"""The python tool's sandbox: each escape attempt is contained and reported, ordinary code just runs."""

from __future__ import annotations

import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from arpo_engine.tools.python_sandbox import (
    UID_COUNT,
    UID_FIRST,
    PythonTool,
    SandboxLimits,
    check_sandbox_prerequisites,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def python() -> PythonTool:
    return PythonTool(limits=SandboxLimits(timeout_s=5))


def host_processes_of_uid(uid: int) -> list[int]:
    """Host pids whose real uid is `uid`: what a finished sandbox must not leave behind."""
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            uid_line = next(line for line in status.read_text().splitlines() if line.startswith("Uid:"))
        except (OSError, StopIteration):
            continue  # the process exited while we looked
        if int(uid_line.split()[1]) == uid:
            pids.append(int(status.parent.name))
    return pids


def sandbox_uid(result_output: str) -> int:
    """The uid a sandbox printed on its first line (each call gets its own from a pool)."""
    uid = int(result_output.split()[0])
    assert UID_FIRST <= uid < UID_FIRST + UID_COUNT
    return uid


def test_print_of_a_sum_returns_five(python: PythonTool) -> None:
    result = python.run({"code": "print(2+3)"})
    assert result.output == "5"
    assert result.error is None
    assert result.details["exit_code"] == 0


def test_value_of_a_bare_last_expression_is_printed(python: PythonTool) -> None:
    assert python.run({"code": "x = 6\nx * 7"}).output == "42"


def test_code_wrapped_in_markdown_fences_runs(python: PythonTool) -> None:
    assert python.run({"code": "```python\nprint('fenced')\n```"}).output == "fenced"


def test_program_without_output_gets_a_hint(python: PythonTool) -> None:
    result = python.run({"code": "x = 1"})
    assert result.error is None
    assert "print()" in result.output


def test_exception_is_reported_with_its_traceback_and_exit_code(python: PythonTool) -> None:
    result = python.run({"code": "a = 1\nb = 0\nprint(a / b)"})
    assert result.error == "exit_code"
    assert "ZeroDivisionError: division by zero" in result.output
    assert 'File "main.py", line 3' in result.output
    assert "print(a / b)" in result.output.split('File "main.py", line 3', 1)[1]  # the code's own line
    assert result.output.endswith("[exit code 1]")


def test_syntax_error_points_at_the_line_without_sandbox_frames(python: PythonTool) -> None:
    result = python.run({"code": "def f(:\n    pass"})
    assert result.error == "exit_code"
    assert "SyntaxError" in result.output
    assert "ast.py" not in result.output


def test_missing_code_argument_is_reported_not_raised(python: PythonTool) -> None:
    result = python.run({"source": "print(1)"})
    assert result.error == "bad_arguments"
    assert "code" in result.output


def test_sandbox_cannot_connect_to_services_on_the_host(python: PythonTool) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        code = f"""
import socket
print(sorted(name for _, name in socket.if_nameindex()))
for port in (5432, {port}):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2)
        print("connected", port)
    except OSError as exc:
        print("blocked", port, type(exc).__name__)
"""
        result = python.run({"code": code})
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing reached the host's listener
    assert result.error is None
    assert result.output.splitlines()[0] == "['lo']"  # a network namespace of its own
    assert "connected" not in result.output
    assert f"blocked {port}" in result.output and "blocked 5432" in result.output


def test_sandbox_cannot_reach_the_internet(python: PythonTool) -> None:
    code = "import socket\nsocket.create_connection(('1.1.1.1', 443), timeout=2)"
    result = python.run({"code": code})
    assert result.error == "exit_code"
    assert "Network is unreachable" in result.output


def test_sandbox_cannot_read_host_passwd_file(python: PythonTool) -> None:
    assert "root:" in Path("/etc/passwd").read_text()
    result = python.run({"code": "print(open('/etc/passwd').read())"})
    assert result.error == "exit_code"
    assert "FileNotFoundError" in result.output
    assert "root:" not in result.output


def test_sandbox_cannot_read_the_project_files(python: PythonTool) -> None:
    project_file = REPO / "pyproject.toml"
    assert project_file.is_file()
    code = f"""
import os
for path in ({str(project_file)!r}, {str(REPO)!r}, "/root", "/home", "/etc"):
    print(path, os.path.exists(path))
print(open({str(project_file)!r}).read())
"""
    result = python.run({"code": code})
    assert result.error == "exit_code"
    assert "True" not in result.output
    assert "FileNotFoundError" in result.output
    assert "[project]" not in result.output


def test_sandbox_cannot_write_outside_its_scratch_dir(python: PythonTool) -> None:
    name = f"arpo-sandbox-escape-{uuid.uuid4().hex}"
    targets = [f"/usr/{name}", f"/tmp/{name}", f"/{name}", str(REPO / name), f"/proc/{name}"]
    code = f"""
for path in {targets!r}:
    try:
        open(path, "w").write("escaped")
        print("wrote", path)
    except OSError as exc:
        print("blocked", path, type(exc).__name__)
open("inside.txt", "w").write("ok")
print("scratch ok", open("inside.txt").read())
"""
    result = python.run({"code": code})
    assert result.error is None
    assert "wrote" not in result.output
    assert result.output.count("blocked") == len(targets)
    assert "scratch ok ok" in result.output
    for host_path in [Path("/usr", name), Path("/tmp", name), Path("/", name), REPO / name]:
        assert not host_path.exists()


def test_sandbox_runs_as_an_unprivileged_user_without_capabilities(python: PythonTool) -> None:
    code = """
import os
print(os.getuid(), os.getgid(), os.getgroups())
print([l.split()[1] for l in open("/proc/self/status") if l.startswith(("CapEff", "CapBnd", "NoNewPrivs"))])
os.setuid(0)
"""
    result = python.run({"code": code})
    uid_line, caps_line = result.output.splitlines()[:2]
    uid, gid, groups = uid_line.split(" ", 2)
    assert UID_FIRST <= int(uid) < UID_FIRST + UID_COUNT and gid == uid and groups == "[]"
    assert caps_line == "['0000000000000000', '0000000000000000', '1']"
    assert "PermissionError" in result.output


def test_sandbox_sees_none_of_the_host_processes(python: PythonTool) -> None:
    result = python.run({"code": "import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))"})
    assert result.output == "[1]"  # the interpreter is pid 1 of its own namespace


def test_fork_bomb_is_stopped_by_the_process_limit(python: PythonTool) -> None:
    started = time.monotonic()
    result = python.run({"code": "import os\nprint(os.getuid(), flush=True)\nwhile True:\n    os.fork()"})
    assert time.monotonic() - started < 5
    assert result.error == "process_limit"
    assert "process limit reached, at most 32 processes" in result.output
    assert host_processes_of_uid(sandbox_uid(result.output)) == []
    assert python.run({"code": "print('still fine')"}).output == "still fine"


def test_process_limit_caps_the_number_of_processes(python: PythonTool) -> None:
    code = """
import os, time
print(os.getuid())
children = 0
while True:
    try:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
    except OSError:
        break
    children += 1
print(children)
"""
    result = python.run({"code": code})
    assert result.output.splitlines()[1] == "31"  # 32 processes with this one
    assert host_processes_of_uid(sandbox_uid(result.output)) == []  # the sleepers died with the call


def test_allocating_10_gb_fails_with_a_memory_error(python: PythonTool) -> None:
    result = python.run({"code": "block = bytearray(10 * 1024**3)"})
    assert result.error == "memory"
    assert "MemoryError" in result.output
    assert result.output.endswith("[error: out of memory, the limit is 512 MB]")


def test_printing_100_mb_is_cut_at_the_output_limit(python: PythonTool) -> None:
    started = time.monotonic()
    result = python.run({"code": "print('x' * 100_000_000)"})
    assert time.monotonic() - started < 5
    assert result.error == "output_limit"
    assert result.truncated
    assert result.output.startswith("x" * 16_384 + "\n[killed: output exceeded 16384 bytes")


def test_sleeping_forever_is_killed_at_the_wall_timeout() -> None:
    python = PythonTool(limits=SandboxLimits(timeout_s=1.5))
    started = time.monotonic()
    code = "import os, time\nprint(os.getuid(), flush=True)\nos.fork()\ntime.sleep(10**6)"
    result = python.run({"code": code})
    assert 1.4 < time.monotonic() - started < 5
    assert result.error == "timeout"
    assert result.output.endswith("\n[killed: still running after 1.5 s]")
    assert host_processes_of_uid(sandbox_uid(result.output)) == []


def test_busy_loop_is_killed_at_the_cpu_limit() -> None:
    python = PythonTool(limits=SandboxLimits(timeout_s=20, cpu_s=1))
    started = time.monotonic()
    result = python.run({"code": "while True:\n    pass"})
    assert time.monotonic() - started < 10  # well before the wall timeout, even on a busy machine
    assert result.error == "timeout"
    assert "more than 1 s of CPU time" in result.output


def test_interpreter_crash_is_reported_with_its_signal(python: PythonTool) -> None:
    result = python.run({"code": "import ctypes\nctypes.string_at(0)"})
    assert result.error == "crash"
    assert result.output == "[crashed: SIGSEGV]"


def test_files_in_scratch_do_not_persist_between_calls(python: PythonTool) -> None:
    first = python.run({"code": "import os\nopen('note.txt', 'w').write('hi')\nprint(os.getcwd(), os.listdir())"})
    second = python.run({"code": "import os\nprint(os.getcwd(), os.listdir())"})
    assert first.output == "/scratch ['note.txt']"
    assert second.output == "/scratch []"


def test_eight_parallel_calls_all_succeed(python: PythonTool) -> None:
    code = "import time\ntime.sleep(0.3)\nprint({i} * {i})"
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: python.run({"code": code.format(i=i)}), range(8)))
    assert [r.output for r in results] == [str(i * i) for i in range(8)]
    assert all(r.error is None for r in results)


def test_missing_bubblewrap_fails_with_the_install_command() -> None:
    with pytest.raises(RuntimeError, match="apt-get install bubblewrap"):
        check_sandbox_prerequisites(bwrap="/nonexistent/bwrap")
