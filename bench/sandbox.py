"""Latency of one sandboxed python tool call: the floor every `<python>` call in a rollout pays.

`measure_sandbox_latency` times a trivial `print(1)` through `PythonTool.run` (bwrap start-up,
rlimits, privilege drop, interpreter start, teardown). bench/rollout.py imports it; run this file
alone to print the numbers as JSON.
"""

from __future__ import annotations

import json
import math
import statistics
import time

from arpo_engine.tools.python_sandbox import PythonTool


def measure_sandbox_latency(n: int = 50) -> dict[str, float]:
    """p50 / p99 / mean wall-clock milliseconds of `n` sequential `print(1)` calls (after one warm-up)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    tool = PythonTool()
    tool.run({"code": "print(1)"})  # page cache and interpreter files warm, as in a running rollout
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        result = tool.run({"code": "print(1)"})
        samples.append((time.perf_counter() - started) * 1000)
        if result.output != "1":
            raise RuntimeError(f"sandbox call failed: {result.error}: {result.output}")
    return {
        "p50_ms": _percentile(samples, 50),
        "p99_ms": _percentile(samples, 99),
        "mean_ms": statistics.fmean(samples),
    }


def _percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile: an observed value, so p99 of 50 samples is the slowest one."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


if __name__ == "__main__":
    print(json.dumps({k: round(v, 2) for k, v in measure_sandbox_latency().items()}))
