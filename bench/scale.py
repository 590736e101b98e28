"""Scale-out benchmark (issue 13): rollout throughput with 1 and 2 sampler actors, and the weight sync's cost.

    .venv/bin/python bench/scale.py                 # SmolLM2-135M demo SFT, transformers sampler
    .venv/bin/python bench/scale.py --model tiny    # the 2-layer random test model (a minute)

Ray's own multi-node test cluster on this machine (`ray.cluster_utils.Cluster`): a head node marked
`learner` and two nodes marked `sampler`, one CPU each. Side by side, the same prompts and seeds, so every
setup grows the same trees (the report checks the token counts agree):
1. in process, no Ray (the engine's default path), torch on one thread: the baseline;
2. one sampler actor, the learner actor on the head node;
3. two sampler actors, the step's prompts split between them (each prompt's tree on one).
Rollout: generated tokens/s and prompts/s at the driver, from dispatch to the merged batch (the version
check before it included). Weight sync: the learner publishes its weights once into the object store and
every sampler loads them, seconds per sync; then the same by a torch.distributed broadcast (gloo here). Also the policy-version check's round trip and the start-up
(placement group, actors, model loads). Prints a markdown table and writes JSON (docs/bench_scale.json).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _config(args: argparse.Namespace, model_path: Path, samplers: int) -> Any:
    from arpo_engine.config import RunConfig, load_config

    raw = load_config(ROOT / "configs" / "demo_rollout.yaml").to_dict()
    raw["model"]["path"] = str(model_path)
    raw["rollout"].update(
        sampler="transformers", group_size=args.group_size, initial_samples=args.initial,
        max_response_tokens=args.tokens,
    )  # fmt: skip
    raw["optim"]["train_batch_prompts"] = args.prompts
    raw["distributed"] = {"samplers": samplers, "separate_learner": True}
    return RunConfig.from_dict(raw).validate()


def _start_cluster(store_mb: int) -> Any:
    import ray
    from ray.cluster_utils import Cluster

    # Ray notes the head's address under its temp folder, where a bare ray.init() would find it: keep ours private.
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="arpo-scale-", dir="/tmp")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # Ray runs actors at nice 15 by default; the baseline runs at 0. Ray reads its config names case-sensitively.
    os.environ["RAY_worker_niceness"] = "0"  # noqa: SIM112
    store = store_mb * 1024 * 1024
    head = {"num_cpus": 1, "resources": {"learner": 1}, "object_store_memory": store, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    for _ in range(2):
        cluster.add_node(num_cpus=1, resources={"sampler": 1}, object_store_memory=store)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    return cluster


def _rollout_rows(name: str, rollouts: Any, samples: list[Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for r in range(args.repeats):
        started = time.perf_counter()
        batch = rollouts(samples, random.Random(args.seed + r), False, 0)
        wall = time.perf_counter() - started
        tokens = batch.metrics["rollout/tokens_generated"]
        rows.append(
            {
                "setup": name,
                "repeat": r,
                "wall_s": wall,
                "tokens": tokens,
                "paths": batch.metrics["rollout/paths"],
                "tok_s": tokens / wall,
                "prompts_s": len(samples) / wall,
            }
        )
        print(f"  {name} repeat {r}: {tokens:.0f} tokens in {wall:.1f} s ({tokens / wall:.1f} tok/s)", flush=True)
    return rows


def _in_process(args: argparse.Namespace, model_path: Path, samples: list[Any]) -> list[dict[str, Any]]:
    import torch

    from arpo_engine.pipeline import make_policy_sampler
    from arpo_engine.rollout.formats import get_format
    from arpo_engine.tools.registry import build_tools
    from arpo_engine.trainer import local_rollouts

    torch.set_num_threads(1)  # what each actor gets from its one reserved CPU
    config = _config(args, model_path, 1)
    sampler, _ = make_policy_sampler(config, model_path)
    try:
        fn = local_rollouts(
            config, sampler, build_tools(config.tools), get_format(config.rollout.call_format, sampler.tokenizer)
        )
        return _rollout_rows("in process (no Ray)", fn, samples, args)
    finally:
        sampler.close()


def _on_ray(args: argparse.Namespace, model_path: Path, samples: list[Any], samplers: int) -> dict[str, Any]:
    import ray

    from arpo_engine.distributed.driver import Fleet
    from arpo_engine.distributed.placement import Placement

    config = _config(args, model_path, samplers)
    name = f"{samplers} sampler actor{'s' if samplers > 1 else ''}"
    fleet = Fleet(config, f"bench-scale-{samplers}", Placement(request_memory=False))
    try:
        started = time.perf_counter()
        assert fleet.reserve(log=print, should_stop=lambda: False)
        ray.get(fleet.learner.load.remote(str(model_path), str(model_path), resume_step=None, version=0))
        where = fleet.start_samplers(model_path, version=0)
        startup = time.perf_counter() - started
        checks = []
        for _ in range(5):
            t = time.perf_counter()
            fleet.versions()
            checks.append(time.perf_counter() - t)
        rows = _rollout_rows(name, fleet.rollouts, samples, args)
        syncs = _syncs(fleet, args.syncs)
        fleet.join_group()  # the same weights again, by a torch.distributed broadcast (gloo on CPUs)
        broadcasts = _syncs(fleet, args.syncs)
        print(
            f"  {name}: sync {statistics.median(syncs):.2f} s through the object store, "
            f"{statistics.median(broadcasts):.2f} s by broadcast (medians of {len(syncs)})",
            flush=True,
        )
        return {
            "setup": name,
            "startup_s": startup,
            "nodes": [w["node"][:12] for w in where],
            "version_check_ms": 1000 * statistics.median(checks),
            "sync_s": syncs,
            "sync_broadcast_s": broadcasts,
            "rollouts": rows,
        }
    finally:
        fleet.shutdown()


def _syncs(fleet: Any, count: int) -> list[float]:
    times = []
    for _ in range(count):
        t = time.perf_counter()
        fleet.sync()
        times.append(time.perf_counter() - t)
    return times


def _weights_mb(model_path: Path) -> float:
    from safetensors import safe_open

    total = 0
    for file in model_path.glob("*.safetensors"):
        with safe_open(str(file), "pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open has no iterator)
                t = f.get_slice(key)
                n = 1
                for d in t.get_shape():
                    n *= d
                total += n * 4
    return total / 2**20


def _report(result: dict[str, Any]) -> str:
    lines = [
        "| setup | tokens | rollout wall (median) | generated tok/s | prompts/s | sync: object store "
        "| sync: broadcast | version check | start-up |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for setup in result["setups"]:
        rows = setup["rollouts"]
        wall = statistics.median(r["wall_s"] for r in rows)
        tokens = statistics.median(r["tokens"] for r in rows)
        sync = f"{statistics.median(setup['sync_s']):.2f} s" if setup.get("sync_s") else "—"
        broadcast = f"{statistics.median(setup['sync_broadcast_s']):.2f} s" if setup.get("sync_broadcast_s") else "—"
        check = f"{setup['version_check_ms']:.1f} ms" if "version_check_ms" in setup else "—"
        startup = f"{setup['startup_s']:.0f} s" if "startup_s" in setup else "—"
        lines.append(
            f"| {setup['setup']} | {tokens:.0f} | {wall:.1f} s | {tokens / wall:.1f} | {result['prompts'] / wall:.3f} "
            f"| {sync} | {broadcast} | {check} | {startup} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["demo-sft", "tiny"], default="demo-sft")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--initial", type=int, default=2, help="ARPO's N")
    parser.add_argument("--tokens", type=int, default=128, help="rollout.max_response_tokens")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--syncs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store-mb", type=int, default=0, help="object store per node (default: fits the weights)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench_scale.json"))
    args = parser.parse_args()

    from arpo_engine.data import load_samples
    from arpo_engine.models import build_tiny_model

    if args.model == "tiny":
        model_path = build_tiny_model(Path(tempfile.mkdtemp(prefix="arpo-scale-model-")) / "tiny", seed=0)
    else:
        model_path = ROOT / "var" / "models" / "smollm2-135m-demo-sft"
    weights_mb = _weights_mb(model_path)
    store_mb = args.store_mb or max(80, int(weights_mb * 1.5) + 64)
    samples = load_samples(_config(args, model_path, 1).data.train_path)[: args.prompts]
    print(
        f"model {model_path.name} ({weights_mb:.0f} MB fp32), {args.prompts} prompts x M={args.group_size}, "
        f"{args.tokens} tokens, object store {store_mb} MB per node; load {os.getloadavg()}",
        flush=True,
    )

    result: dict[str, Any] = {
        "model": args.model,
        "weights_mb": weights_mb,
        "prompts": args.prompts,
        "M": args.group_size,
        "N": args.initial,
        "max_response_tokens": args.tokens,
        "store_mb": store_mb,
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
    }
    result["setups"] = [{"setup": "in process (no Ray)", "rollouts": _in_process(args, model_path, samples)}]
    cluster = _start_cluster(store_mb)
    try:
        for samplers in (1, 2):
            result["setups"].append(_on_ray(args, model_path, samples, samplers))
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()
    result["load_after"] = os.getloadavg()
    counts = {tuple(r["tokens"] for r in s["rollouts"]) for s in result["setups"]}
    result["same_trees"] = len(counts) == 1
    report = _report(result)
    print(report)
    print(f"same token counts in every setup (same trees): {result['same_trees']}; load after {result['load_after']}")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
