"""Host-side work of a tree-packed update: what the CPU does before the accelerator gets the batch.

On a GPU the model's share of an update is about a second at the gpu_check sizes (docs/benchmarks.md,
"GPU"), so the learner's host work (splitting the mini-batch into micro-batches, building each pack,
Eq. 6's token set) and what it copies to the device count. This measures both, on ARPO and GRPO trees
recorded from the demo task at gpu_check's sizes (8 prompts, M = 8, about 2,000 tokens per path), for
this checkout and, side by side in the same process, for `arpo_engine/tree_pack.py` as it was at the
git revision `--against` (default: none).

Run: `.venv/bin/python bench/tree_host.py [--prompts 8] [--against REV] [--repeats 5]`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def module_at(revision: str) -> ModuleType:
    """arpo_engine/tree_pack.py as committed at `revision`, imported under another name."""
    source = subprocess.run(
        ["git", "show", f"{revision}:arpo_engine/tree_pack.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "tree_pack_then.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("tree_pack_then", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def tensor_bytes(tree: Any) -> int:
    """What `TreePack.to(device)` copies: every tensor the pack holds (segments' own included)."""
    total = 0
    for value in vars(tree).values():
        if isinstance(value, torch.Tensor):
            total += value.numel() * value.element_size()
    for s in tree.segments:
        for value in vars(s).values():
            if isinstance(value, torch.Tensor):
                total += value.numel() * value.element_size()
    return total


def host_update(tp: ModuleType, batch: Sequence[Any], budget: int, hard: bool) -> dict[str, float]:
    """One update's host work as the learner does it (arpo_engine/learner.py `_step` and `_pad`)."""
    from arpo_engine.learner import pad_sequences

    started = time.perf_counter()
    chunks = list(tp.tree_micro_batches(batch, budget))
    split = time.perf_counter()
    copied = 0
    for chunk in chunks:
        padded = pad_sequences(chunk, 0)
        tree = tp.pack(chunk, padded.input_ids.shape[1])
        if hard:
            tp.eq6_mask(tree, padded.mask, padded.advantages)
        copied += tensor_bytes(tree)
    done = time.perf_counter()
    return {
        "seconds": done - started,
        "micro_batch_s": split - started,
        "chunks": len(chunks),
        "copied_mb": copied / 1e6,
    }


def medians(sides: dict[str, Callable[[], dict[str, float]]], repeats: int) -> dict[str, dict[str, float]]:
    """Each side once after a warm-up round, then `repeats` rounds interleaved; the median of each value."""
    for fn in sides.values():
        fn()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, fn in sides.items():
            runs[name].append(fn())
    return {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--words", type=int, default=60, help="words per thought (60: about 2,000 tokens a path)")
    parser.add_argument("--micro-batch-tokens", type=int, default=65_536, help="gpu_check's budget")
    parser.add_argument("--against", default="", help="a git revision whose tree_pack.py to measure beside this one")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--busy", type=int, default=0, help="processes spinning on the CPU meanwhile (a busy host)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench_tree_host.json"))
    args = parser.parse_args()

    from arpo_engine import tree_pack
    from tests.trees import record_trees, train_sequences

    versions = {"now": tree_pack}
    if args.against:
        versions[args.against] = module_at(args.against)
    batches = {
        "arpo": train_sequences(
            record_trees(args.prompts, group_size=args.group_size, initial=args.group_size // 2, words=args.words)
        ),
        "grpo": train_sequences(
            record_trees(args.prompts, group_size=args.group_size, branching=False, words=args.words)
        ),
    }
    report: dict[str, Any] = {
        "prompts": args.prompts,
        "group_size": args.group_size,
        "threads": torch.get_num_threads(),
        "busy": args.busy,
    }
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        for name, batch in batches.items():
            report[f"{name}_tokens"] = sum(s.length for s in batch)
            report[f"{name}_distinct"] = tree_pack.unique_tokens(batch)
            for hard in (False, True):
                sides = {
                    f"{name}_{'hard' if hard else 'soft'}_{version}": (
                        lambda m=module, h=hard, b=batch: host_update(m, b, args.micro_batch_tokens, h)
                    )
                    for version, module in versions.items()
                }
                for key, values in medians(sides, args.repeats).items():
                    report[key] = values
                    print(key, json.dumps({k: round(v, 4) for k, v in values.items()}), flush=True)
    finally:
        for spinner in spinners:
            spinner.kill()
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
