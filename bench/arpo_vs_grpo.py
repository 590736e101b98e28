"""Does training learn? Base vs SFT vs RL held-out accuracy, and GRPO vs ARPO at the same budget (issue: engine II).

Everything runs through the public CLI, one process per stage, so this is also what a user would type:
1. `python -m arpo_engine eval` on the held-out split (greedy, no branching) for the base model and for
   the SFT cold start (`make model-sft`, configs/demo_sft.yaml);
2. `python -m arpo_engine train configs/demo_train.yaml` from the SFT model, for ARPO (preset
   arpo_paper, N = M/2 initial samples, entropy branching) and GRPO (preset grpo_baseline, N = M), same
   seed, same M, same steps, same prompts per step; ARPO over two seeds so the seed spread is visible.
   Each run ends with a held-out evaluation of its final policy.
Writes `<out>/arpo_vs_grpo.json`, `<out>/learning_curves.png` (train reward and tool calls per step),
`<out>/heldout_accuracy.png`, and prints the markdown tables of docs/benchmarks.md.

Run: `.venv/bin/python bench/arpo_vs_grpo.py [--steps 6] [--arpo-seeds 0 1] [--grpo-seeds 0]`
(after `make model-sft`). Work files and checkpoints go to var/bench/arpo_vs_grpo/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PYTHON = sys.executable
BASE_MODEL = ROOT / "var" / "models" / "smollm2-135m"
TRAIN_CONFIG = ROOT / "configs" / "demo_train.yaml"
PRESETS = {"arpo": "arpo_paper", "grpo": "grpo_baseline"}
CURVE_KEYS = (
    "reward/mean",
    "accuracy",
    "tools/calls_per_traj",
    "tools/calls_total",
    "rollout/tokens_generated",
    "rollout/paths",
    "branch/forks",
    "time/step_s",
    "time/rollout_s",
    "time/update_s",
    "time/sync_s",
    "eval/accuracy",
    "eval/tool_calls_per_traj",
    "format/ok_frac",
    "eval/format_ok",
    "entropy/token_mean",
)


def run_config(args: argparse.Namespace, algo: str, seed: int, work: Path) -> Path:
    """The run's full config as JSON (paths already absolute), derived from configs/demo_train.yaml."""
    from arpo_engine.config import RunConfig, load_config

    raw = load_config(TRAIN_CONFIG, preset=PRESETS[algo]).to_dict()
    raw["name"] = f"{algo}-s{seed}"
    raw["seed"] = seed
    raw["rollout"]["group_size"] = args.group_size
    raw["rollout"]["initial_samples"] = args.initial if algo == "arpo" else args.group_size
    raw["optim"]["train_batch_prompts"] = args.prompts_per_step
    raw["optim"]["mini_batch_prompts"] = args.mini_batch_prompts
    raw["optim"]["lr"] = args.lr
    raw["optim"]["trainable_layers"] = args.trainable_layers
    raw["train"].update(
        steps=args.steps, eval_every=args.eval_every or args.steps, eval_prompts=args.eval_prompts, eval_at_start=False
    )
    raw["checkpoint"].update(dir=str(work / "runs"), every_steps=args.steps, keep_last=1)
    path = work / f"{algo}-s{seed}.json"
    path.write_text(json.dumps(RunConfig.from_dict(raw).validate().to_dict(), indent=1))
    return path


def evaluate(config: Path, model: Path | None, prompts: int, out: Path) -> dict[str, float]:
    cmd = [PYTHON, "-m", "arpo_engine", "eval", str(config), "--prompts", str(prompts), "--json", str(out)]
    if model is not None:
        cmd += ["--model", str(model)]
    subprocess.run(cmd, check=True, cwd=ROOT)
    metrics: dict[str, float] = json.loads(out.read_text())["metrics"]
    return metrics


def train(config: Path, run_id: str, work: Path) -> tuple[list[dict[str, float]], float]:
    shutil.rmtree(work / "runs" / f"run-{run_id}", ignore_errors=True)  # a fresh run, never a resume
    metrics_file = work / f"{run_id}.jsonl"
    metrics_file.unlink(missing_ok=True)
    started = time.perf_counter()
    subprocess.run(
        [PYTHON, "-m", "arpo_engine", "train", str(config), "--run-id", run_id, "--metrics", str(metrics_file)],
        check=True,
        cwd=ROOT,
    )
    wall = time.perf_counter() - started
    history = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    return [{"step": h["step"], **{k: h[k] for k in CURVE_KEYS if k in h}} for h in history], wall


def summarise(history: list[dict[str, float]]) -> dict[str, float]:
    steps = [h for h in history if h["step"] > 0]

    def mean(key: str) -> float:
        values = [h[key] for h in steps if key in h]
        return statistics.fmean(values) if values else float("nan")

    final = [h for h in steps if "eval/accuracy" in h]
    return {
        "heldout_accuracy": final[-1]["eval/accuracy"] if final else float("nan"),
        "heldout_format_ok": final[-1].get("eval/format_ok", float("nan")) if final else float("nan"),
        "heldout_calls_per_traj": final[-1].get("eval/tool_calls_per_traj", float("nan")) if final else float("nan"),
        "train_reward_first": steps[0]["reward/mean"] if steps else float("nan"),
        "train_reward_last": steps[-1]["reward/mean"] if steps else float("nan"),
        "tool_calls_per_step": mean("tools/calls_total"),
        "tokens_generated_per_step": mean("rollout/tokens_generated"),
        "paths_per_step": mean("rollout/paths"),
        "step_s": mean("time/step_s"),
        "rollout_s": mean("time/rollout_s"),
        "update_s": mean("time/update_s"),
    }


def plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, run in results["runs"].items():
        steps = [h["step"] for h in run["history"]]
        style = "-" if name.startswith("arpo") else "--"
        axes[0].plot(steps, [h["reward/mean"] for h in run["history"]], style, marker="o", ms=3, label=name)
        axes[1].plot(steps, [h["accuracy"] for h in run["history"]], style, marker="o", ms=3, label=name)
        axes[2].plot(steps, [h["tools/calls_total"] for h in run["history"]], style, marker="o", ms=3, label=name)
    for ax, title in zip(
        axes, ("train reward (mean over paths)", "train accuracy", "tool calls per step"), strict=True
    ):
        ax.set_title(title)
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=110)
    plt.close(fig)

    labels = ["base", "SFT", *results["runs"]]
    accuracy = [results["base"]["eval/accuracy"], results["sft"]["eval/accuracy"]]
    accuracy += [run["summary"]["heldout_accuracy"] for run in results["runs"].values()]
    format_ok = [results["base"].get("eval/format_ok", 0.0), results["sft"].get("eval/format_ok", 0.0)]
    format_ok += [run["summary"].get("heldout_format_ok", 0.0) for run in results["runs"].values()]
    colors = ["#999", "#69c"] + ["#d62" if n.startswith("arpo") else "#8a5" for n in results["runs"]]
    x = list(range(len(labels)))
    fig, ax = plt.subplots(figsize=(8, 4.2))
    bars = ax.bar([i - 0.2 for i in x], [100 * v for v in accuracy], 0.4, color=colors, label="answer right")
    ax.bar_label(bars, fmt="%.0f")
    bars = ax.bar([i + 0.2 for i in x], [100 * v for v in format_ok], 0.4, color=colors, alpha=0.35, hatch="//",
                  edgecolor="#555", label="format valid")  # fmt: skip
    ax.bar_label(bars, fmt="%.0f", color="#555")
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 112)
    ax.set_ylabel(f"% of {results['eval_prompts']} held-out prompts")
    ax.set_title("Demo task, SmolLM2-135M-Instruct, greedy: answer accuracy and format apart")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "heldout_accuracy.png", dpi=110)
    plt.close(fig)


def report(results: dict[str, Any]) -> str:
    def pct(value: float) -> str:
        return f"{100 * value:.1f} %" if value == value else "–"  # NaN: not measured

    base, sft = results["base"], results["sft"]
    lines = [
        f"| model | answer accuracy ({results['eval_prompts']} prompts) | format valid | tool calls / answer |",
        "|---|---|---|---|",
        f"| base SmolLM2-135M-Instruct | {pct(base['eval/accuracy'])} | {pct(base.get('eval/format_ok', float('nan')))} "
        f"| {base['eval/tool_calls_per_traj']:.2f} |",
        f"| after SFT cold start | {pct(sft['eval/accuracy'])} | {pct(sft.get('eval/format_ok', float('nan')))} "
        f"| {sft['eval/tool_calls_per_traj']:.2f} |",
    ]
    for name, run in results["runs"].items():
        s = run["summary"]
        lines.append(
            f"| after RL: {name} | {pct(s['heldout_accuracy'])} | {pct(s.get('heldout_format_ok', float('nan')))} "
            f"| {s['heldout_calls_per_traj']:.2f} |"
        )
    lines += [
        "",
        "| run | train reward step 1 → last | tool calls / step | generated tokens / step | paths / step | step s | rollout s | update s | run wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in results["runs"].items():
        s = run["summary"]
        lines.append(
            f"| {name} | {s['train_reward_first']:.3f} → {s['train_reward_last']:.3f} | {s['tool_calls_per_step']:.1f} "
            f"| {s['tokens_generated_per_step']:.0f} | {s['paths_per_step']:.0f} | {s['step_s']:.0f} | {s['rollout_s']:.0f} "
            f"| {s['update_s']:.0f} | {run['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def _relative(path: str) -> str:
    """Paths inside the repository are recorded relative to it, so results carry no machine paths."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else resolved.name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6, help="RL steps per run")
    parser.add_argument("--eval-every", type=int, default=3, help="held-out evaluation every N steps (and at the end)")
    parser.add_argument("--arpo-seeds", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--grpo-seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--group-size", type=int, default=8, help="M, paths per prompt")
    parser.add_argument("--initial", type=int, default=4, help="ARPO's N initial samples per prompt")
    parser.add_argument("--prompts-per-step", type=int, default=4)
    parser.add_argument("--mini-batch-prompts", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--trainable-layers", type=int, default=8)
    parser.add_argument("--eval-prompts", type=int, default=100)
    parser.add_argument(
        "--skip-base",
        action="store_true",
        help="add to an earlier result: reuse its base/SFT evals and keep its other runs",
    )
    parser.add_argument(
        "--plot-only", action="store_true", help="redraw the charts and tables from <out>/arpo_vs_grpo.json"
    )
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument("--work", default=str(ROOT / "var" / "bench" / "arpo_vs_grpo"))
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    results_path = out / "arpo_vs_grpo.json"
    if args.plot_only:
        results = json.loads(results_path.read_text())
        plot(results, out)
        print(report(results))
        return 0
    started = time.perf_counter()
    eval_config = run_config(args, "arpo", 0, work)

    recorded = {k: (_relative(v) if k in ("out", "work") else v) for k, v in vars(args).items()}
    results: dict[str, Any] = {"args": recorded, "eval_prompts": args.eval_prompts, "runs": {}}
    earlier_wall = 0.0
    if args.skip_base and results_path.is_file():
        earlier = json.loads(results_path.read_text())
        earlier_wall = float(earlier.get("total_wall_s", 0.0))
        results["base"], results["sft"] = earlier["base"], earlier["sft"]
        results["runs"] = dict(earlier["runs"])
    else:
        results["base"] = evaluate(eval_config, BASE_MODEL, args.eval_prompts, work / "eval_base.json")
        results["sft"] = evaluate(eval_config, None, args.eval_prompts, work / "eval_sft.json")
    runs = [("arpo", s) for s in args.arpo_seeds] + [("grpo", s) for s in args.grpo_seeds]
    for algo, seed in runs:
        name = f"{algo}-s{seed}"
        history, wall = train(run_config(args, algo, seed, work), name, work)
        results["runs"][name] = {"history": history, "wall_s": wall, "summary": summarise(history)}
        results_path.write_text(json.dumps(results, indent=1))  # partial results survive a later crash
    results["total_wall_s"] = time.perf_counter() - started + earlier_wall  # every invocation that built it
    results_path.write_text(json.dumps(results, indent=1))
    plot(results, out)
    print(report(results))
    print(f"total wall time {results['total_wall_s'] / 60:.1f} min; results in {results_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
