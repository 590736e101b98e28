"""Math-equivalence reward with the `math-verify` package (ARPO_SPEC.md §3, "math equivalence").

math-verify bounds its work with `signal.alarm`, which only works in the main thread and would
clobber any other SIGALRM user (pytest-timeout, a host framework). So the check runs in small
worker processes (`_math_worker`): there it has a main thread of its own, and the parent adds a hard
deadline, killing a worker that overruns (a C-level hang ignores signals) and starting a fresh one
on the next call. Scoring is then safe from any thread and never hangs.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from arpo_engine.rewards.base import RewardResult, as_answer_list
from arpo_engine.rewards.text import extract_answer_block, extract_boxed

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class _Worker:
    """One `_math_worker` child speaking JSON lines over its stdin/stdout."""

    def __init__(self, startup_timeout_s: float) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "arpo_engine.rewards._math_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=_PACKAGE_ROOT,
        )
        self._buffer = b""
        if self._read_line(time.monotonic() + startup_timeout_s) is None:
            self.kill()
            raise RuntimeError("the math-verify worker did not start (is math-verify installed?)")

    def ask(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
        """The reply, or None when the worker overran `timeout_s` or died (it is then unusable)."""
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps(request).encode() + b"\n")
            self._proc.stdin.flush()
        except OSError:
            return None
        line = self._read_line(time.monotonic() + timeout_s)
        try:
            reply = json.loads(line) if line is not None else None
        except json.JSONDecodeError:
            return None
        return reply if isinstance(reply, dict) else None

    def _read_line(self, deadline: float) -> bytes | None:
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:  # the worker exited
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def kill(self) -> None:
        self._proc.kill()
        self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                stream.close()


class _WorkerPool:
    """Up to `size` live workers; a caller borrows one for one request."""

    def __init__(self, size: int, startup_timeout_s: float) -> None:
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._startup_timeout_s = startup_timeout_s

    def ask(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
        with self._slots:
            with self._lock:
                worker = self._idle.pop() if self._idle else None
            if worker is None:
                worker = _Worker(self._startup_timeout_s)
            reply = worker.ask(request, timeout_s)
            if reply is None:
                worker.kill()  # it may still be computing; a fresh one replaces it next time
            else:
                with self._lock:
                    self._idle.append(worker)
            return reply

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


class MathScorer:
    """1.0 if the final answer is mathematically equivalent to a ground truth (math-verify), else 0.0."""

    def __init__(
        self,
        *,
        timeout_s: float = 10.0,
        workers: int = 2,
        max_answer_chars: int = 2000,
        startup_timeout_s: float = 120.0,
    ) -> None:
        """`timeout_s`: hard limit per response; `workers`: checks that may run at once;
        `max_answer_chars`: longer final answers score 0 without being parsed."""
        if timeout_s <= 0 or workers < 1:
            raise ValueError("math scorer: timeout_s must be positive and workers at least 1")
        self.timeout_s = timeout_s
        self.max_answer_chars = max_answer_chars
        # Each parse/verify step gets a share of the budget so that the worker's own alarms, not the
        # parent's kill (which costs a worker restart), end a slow check in the common case.
        self._op_timeout_s = max(1, int(timeout_s // 3))
        self._pool = _WorkerPool(workers, startup_timeout_s)
        # A scorer dropped without close() must not leave its workers behind until process exit.
        weakref.finalize(self, self._pool.close)

    def close(self) -> None:
        """Stop the worker processes (they also exit when this process does)."""
        self._pool.close()

    def __call__(
        self,
        response_text: str,
        answers: Sequence[str],
        *,
        tool_names_used: Sequence[str] = (),
        tool_kinds_used: Collection[str] = (),
        call_format: str = "tags",
    ) -> RewardResult:
        block = extract_answer_block(response_text)
        boxed = extract_boxed(block if block is not None else response_text)
        prediction = boxed if boxed is not None else (block.strip() if block is not None else None)
        details: dict[str, Any] = {"correct": False, "prediction": prediction}
        if prediction is None:
            return RewardResult(0.0, "no \\boxed{} or <answer> block", details)
        golds = as_answer_list(answers)
        if not golds:
            return RewardResult(0.0, "no ground truth", details)
        for index, gold in enumerate(golds):
            if prediction.strip() == gold.strip():  # no need to start a worker for identical text
                return RewardResult(1.0, f"equal to answer #{index + 1}", details | {"correct": True})
        if len(prediction) > self.max_answer_chars:
            return RewardResult(0.0, f"answer longer than {self.max_answer_chars} characters", details)
        # Re-box the extracted answer so math-verify reads exactly it and not other numbers in the block.
        text = f"\\boxed{{{prediction}}}" if boxed is not None else prediction
        request = {"prediction": text, "answers": golds, "op_timeout_s": self._op_timeout_s}
        try:
            reply = self._pool.ask(request, self.timeout_s)
        except (OSError, RuntimeError) as exc:
            return RewardResult(0.0, f"math check unavailable: {exc}", details)
        if reply is None:
            return RewardResult(0.0, f"math check timed out after {self.timeout_s:g}s", details)
        details["parsed"] = reply.get("parsed")
        if reply.get("error"):
            return RewardResult(0.0, f"math check: {reply['error']}", details)
        match = reply.get("match")
        if match is None:
            reason = f"not equivalent to any answer (parsed {details['parsed']!r:.60})"
            return RewardResult(0.0, reason, details)
        details["correct"] = True
        details["best_answer"] = golds[match]
        return RewardResult(1.0, f"equivalent to answer #{match + 1}", details)
