"""Memory and time of one demo-sized learner update, by learner setting (issue 12, docs/benchmarks.md "Memory").

    PYTHONPATH=. .venv/bin/python bench/update_memory.py                  # checkpointing off, then on
    PYTHONPATH=. .venv/bin/python bench/update_memory.py --set '{"micro_batch_tokens": 4096}'

One `Learner.update` of SmolLM2-135M on ARPO trees recorded on the demo prompts (tests/trees.py: the real
agent loop with branching, a scripted sampler; 4 prompts x M = 8 as in configs/demo_train.yaml) with the
demo's learner settings (top 8 blocks trainable, 8,192-token micro-batches, tree-packed, precision auto).
Each setting runs in its own process, one after the other, so one's freed memory cannot hide another's.
Reported: growth of resident memory over the update (VmHWM after, reset through /proc/self/clear_refs
before, minus resident before) and wall time. Writes docs/bench_update_memory.json.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEMO_OPTIM = {"lr": 2e-5, "micro_batch_tokens": 8192, "trainable_layers": 8, "precision": "auto"}


def _status_mb(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(match.group(1)) // 1024 if match else 0


def one_update(model_path: str, prompts: int, words: int, overrides: dict[str, Any]) -> dict[str, Any]:
    """In this process: record trees, build the learner, measure one update."""
    sys.path.insert(0, str(ROOT))
    from arpo_engine.config import AlgorithmConfig, OptimConfig
    from arpo_engine.device import release_freed_memory
    from arpo_engine.learner import Learner
    from arpo_engine.pipeline import load_policy
    from arpo_engine.tree_pack import unique_tokens
    from tests.trees import record_trees, train_sequences

    batch = train_sequences(record_trees(prompts, group_size=8, initial=4, words=words))
    model, tokenizer = load_policy(model_path)
    optim = OptimConfig(**{**DEMO_OPTIM, "train_batch_prompts": prompts, "mini_batch_prompts": prompts, **overrides})
    learner = Learner(model, optim=optim, algorithm=AlgorithmConfig(), pad_token_id=tokenizer.eos_token_id)
    release_freed_memory()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _status_mb("VmRSS")
    started = time.perf_counter()
    learner.update(batch)
    seconds = time.perf_counter() - started
    return {
        "settings": overrides, "precision": learner.precision, "paths": len(batch),
        "tokens": sum(s.length for s in batch), "distinct_tokens": unique_tokens(batch),
        "resident_before_mb": before, "peak_growth_mb": _status_mb("VmHWM") - before, "seconds": round(seconds, 1),
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "var" / "models" / "smollm2-135m"))
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--words", type=int, default=12, help="words per scripted turn (12: demo-length paths)")
    parser.add_argument("--set", action="append", default=[], help="JSON of OptimConfig fields, one setting each")
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench_update_memory.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(one_update(args.model, args.prompts, args.words, json.loads(args.child))))
        return 0
    settings = args.set or ['{"activation_checkpointing": false}', '{"activation_checkpointing": true}']
    results = []
    for setting in settings:
        command = [sys.executable, __file__, "--model", args.model, "--prompts", str(args.prompts),
                   "--words", str(args.words), "--child", setting]  # fmt: skip
        done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    first = results[0]
    print(f"\n{first['paths']} paths, {first['tokens']:,} tokens, {first['distinct_tokens']:,} distinct "
          f"({first['precision']})\n")  # fmt: skip
    print("| setting | update adds (peak) | seconds |\n|---|---|---|")
    for r in results:
        print(f"| `{json.dumps(r['settings'])}` | {r['peak_growth_mb']:,} MB | {r['seconds']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
