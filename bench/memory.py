"""Peak resident memory of a training run, phase by phase, against `arpo_engine.memory.estimate` (issue 12).

    .venv/bin/python bench/memory.py                       # the demo run of `make train-demo`
    .venv/bin/python bench/memory.py --steps 1 --no-eval   # one step, no held-out evaluation

Runs `run_training` in this process (vLLM in process too, as the worker runs it) and marks the phases
at the trainer's seams: start-up (models, vLLM, its KV cache), rollout, update (scoring, loss, backward,
optimizer step), weight sync, held-out evaluation, checkpoint. Each phase's peak is the kernel's own
high-water mark (VmHWM), reset at every phase boundary (/proc/self/clear_refs), so nothing between two
samples is missed. Tool calls run in their own sandboxed processes (capped by the python tool's
memory_mb) and are not counted. Writes JSON (docs/bench_memory.json) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MB = 1 << 20


def _status(field: str) -> int:
    """A VmXXX field of /proc/self/status, in bytes."""
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


class Phases:
    """Which phase the run is in, and each phase's peak resident memory."""

    def __init__(self) -> None:
        self.current = "start-up"
        self.started = time.perf_counter()
        self.peaks: dict[str, int] = {}
        self.log: list[dict[str, Any]] = []
        self._reset()

    def enter(self, name: str) -> None:
        peak, rss = _status("VmHWM"), _status("VmRSS")
        self.peaks[self.current] = max(self.peaks.get(self.current, 0), peak)
        now = time.perf_counter()
        self.log.append({"phase": self.current, "peak_mb": peak / MB, "rss_at_end_mb": rss / MB,
                         "seconds": now - self.started})  # fmt: skip
        self.current, self.started = name, now
        self._reset()

    @staticmethod
    def _reset() -> None:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def _wrap(owner: Any, name: str, before: Callable[[], None], after: Callable[[], None] | None = None) -> None:
    original = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        before()
        try:
            return original(*args, **kwargs)
        finally:
            if after is not None:
                after()

    setattr(owner, name, wrapped)


def measure(config: Any, phases: Phases) -> dict[str, float]:
    """Train `config` in this process with the phases marked; returns the last step's metrics."""
    from arpo_engine import checkpoint, learner, pipeline, trainer

    _wrap(trainer, "train_step", lambda: phases.enter("rollout"))
    _wrap(learner.Learner, "update", lambda: phases.enter("update"), lambda: phases.enter("weight sync"))
    _wrap(trainer, "evaluate", lambda: phases.enter("eval"))
    _wrap(checkpoint.CheckpointManager, "save", lambda: phases.enter("checkpoint"))
    last: dict[str, float] = {}
    from arpo_engine.rollout.vllm_sampler import VLLMSampler

    close = VLLMSampler.close

    def close_after_reading(self: Any) -> None:
        # a request preempted for want of KV cache would be re-run: the sized cache should never need to
        if self.llm is not None:
            counters = [m for m in self.llm.get_metrics() if m.name == "vllm:num_preemptions"]
            last["engine/preemptions"] = float(sum(getattr(m, "value", 0) for m in counters))
        close(self)

    VLLMSampler.close = close_after_reading  # type: ignore[method-assign]

    def sink(step: int, metrics: dict[str, float]) -> None:
        last.clear()
        last.update(metrics)

    pipeline.run_training(config, run_id="bench-memory", log=lambda line: None, sink=sink)
    phases.enter("done")
    return last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "demo_train.yaml"))
    parser.add_argument("--steps", type=int, help="override train.steps")
    parser.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench_memory.json"))
    args = parser.parse_args()

    from arpo_engine.config import RunConfig, load_config
    from arpo_engine.memory import estimate

    raw = load_config(args.config).to_dict()
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    raw["checkpoint"]["dir"] = str(work)
    if args.steps:
        raw["train"]["steps"] = args.steps
    if args.no_eval:
        raw["train"]["eval_every"] = 0
    config = RunConfig.from_dict(raw).validate()
    est = estimate(config)
    phases = Phases()
    try:
        metrics = measure(config, phases)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peak = max(phases.peaks.values())
    report = {
        "config": str(Path(args.config).resolve().relative_to(ROOT)),
        "steps": config.train.steps,
        "eval_prompts": config.train.eval_prompts if config.train.eval_every else 0,
        "peak_mb": peak / MB,
        "phase_peak_mb": {name: value / MB for name, value in phases.peaks.items() if name != "done"},
        "phases": phases.log,
        "estimate_mb": {
            "kv_cache": est.kv_cache_bytes / MB,
            "sampler": est.sampler_bytes / MB,
            "learner": est.learner_bytes / MB,
            "runtime": est.runtime_bytes / MB,
            "total": est.total_bytes / MB,
        },
        "estimate_over_peak": est.total_bytes / peak,
        "last_step": {k: v for k, v in metrics.items() if k.startswith(("time/", "rollout/", "train/", "engine/", "memory/"))},
    }
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(render(report))
    print(f"\nJSON written to {args.out}")
    return 0


def render(r: dict[str, Any]) -> str:
    lines = [
        f"{r['config']}, {r['steps']} steps, eval on {r['eval_prompts']} prompts",
        "",
        "| phase | peak RSS (MB) |",
        "|---|---|",
    ]
    lines += [f"| {name} | {mb:.0f} |" for name, mb in r["phase_peak_mb"].items()]
    e = r["estimate_mb"]
    lines += [
        "",
        f"peak {r['peak_mb']:.0f} MB; estimate {e['total']:.0f} MB (KV cache {e['kv_cache']:.0f}, sampler "
        f"{e['sampler']:.0f}, learner {e['learner']:.0f}, runtime {e['runtime']:.0f}) = "
        f"{r['estimate_over_peak']:.2f}x the peak",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
