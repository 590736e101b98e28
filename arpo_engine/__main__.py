"""Command line: `python -m arpo_engine rollout|train|eval|sft <config.yaml>`; `agent <checkpoint> "question"`."""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path
from typing import Any

from arpo_engine.config import ConfigError, RunConfig, load_config
from arpo_engine.data import DataError


def _rollout(args: argparse.Namespace) -> int:
    from arpo_engine.data import load_samples
    from arpo_engine.rollout.agent import RolloutDeps, run_rollouts
    from arpo_engine.rollout.factory import make_sampler
    from arpo_engine.rollout.formats import get_format
    from arpo_engine.rollout.render import format_group, format_metrics
    from arpo_engine.tools.registry import build_tools

    config = load_config(args.config)
    config = _override(config, args)
    data_path = config.data.eval_path or config.data.train_path
    if not data_path:
        raise ConfigError("data.eval_path or data.train_path must name a prompt file")
    samples = load_samples(data_path)[: args.prompts]
    tools = build_tools(config.tools)
    print(f"loading {config.model.path} with the {config.rollout.sampler} sampler …", flush=True)
    sampler = make_sampler(config.model, config.rollout, seed=config.seed, kv_cache_bytes=_kv_for(config, len(samples)))
    try:
        fmt = get_format(config.rollout.call_format, sampler.tokenizer)
        deps = RolloutDeps(sampler, tools, fmt, random.Random(config.seed))
        batch = run_rollouts(samples, config, deps)
    finally:
        sampler.close()
    for group in batch.groups:
        print(format_group(group))
        print()
    print("rollout metrics:")
    print(format_metrics(batch.metrics))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"groups": [g.to_dict() for g in batch.groups], "metrics": batch.metrics}, indent=1)
        )
        print(f"rollout tree written to {args.json}")
    return 0


KEY_METRICS = (
    ("reward/mean", "reward"),
    ("accuracy", "acc"),
    ("format/ok_frac", "fmt"),
    ("tools/calls_per_traj", "calls"),
    ("branch/forks", "forks"),
    ("entropy/delta_mean", "dH"),
    ("loss/policy", "loss"),
    ("eval/accuracy", "eval_acc"),
    ("eval/format_ok", "eval_fmt"),
    ("time/step_s", "s"),
)


def metrics_line(step: int, metrics: dict[str, float]) -> str:
    parts = [f"{short}={metrics[key]:.3g}" for key, short in KEY_METRICS if key in metrics]
    return f"step {step}: " + " ".join(parts)


def _train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from arpo_engine.pipeline import run_training

    config = _override(load_config(args.config, preset=args.preset), args)
    run_dir = Path(config.checkpoint.dir) / f"run-{args.run_id or config.name}"
    if args.restart and run_dir.exists():
        shutil.rmtree(run_dir)
        print(f"--restart: removed the earlier checkpoints in {run_dir}")
    bar = tqdm(total=config.train.steps, desc=config.name, unit="step", dynamic_ncols=True)
    history_file = Path(args.metrics) if args.metrics else None

    def sink(step: int, metrics: dict[str, float]) -> None:
        if step > bar.n:
            bar.update(step - bar.n)
        bar.write(metrics_line(step, metrics))
        if history_file is not None:
            with history_file.open("a") as f:
                f.write(json.dumps({"step": step, **metrics}) + "\n")

    def show(step: int, batch: Any, rewards: Any) -> None:
        from arpo_engine.rollout.render import format_group

        group, scores = batch.groups[0], [f"{r.score:.2f}" for r in rewards[0]]
        bar.write(f"step {step}, first prompt's rollout tree (rewards {' '.join(scores)}):")
        bar.write(format_group(group))

    result = run_training(
        config, run_id=args.run_id, log=bar.write, sink=sink, on_rollout=show if args.show_rollouts else None
    )
    bar.close()
    print(f"done: {result.steps_done} steps; checkpoints in {run_dir} (latest, best)")
    latest = run_dir / "latest"
    if latest.exists():
        print(f"the trained model: {latest.resolve()} (a Hugging Face folder: transformers or vLLM load it)")
    return 0


def _sft(args: argparse.Namespace) -> int:
    from arpo_engine.pipeline import run_sft_stage

    config = _override(load_config(args.config), args)
    run_sft_stage(config, Path(args.out))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from arpo_engine.pipeline import run_evaluation

    config = _override(load_config(args.config), args)
    if args.prompts:
        raw = config.to_dict()
        raw["train"]["eval_prompts"] = args.prompts
        config = RunConfig.from_dict(raw).validate()
    metrics, batch = run_evaluation(config, args.model)
    for key, value in metrics.items():
        print(f"{key}: {value:.4g}")
    if args.json:
        payload = {"model": args.model or config.model.path, "metrics": metrics,
                   "groups": [g.to_dict() for g in batch.groups]}
        Path(args.json).write_text(json.dumps(payload, indent=1))
        print(f"trajectories written to {args.json}")
    return 0


def _agent(args: argparse.Namespace) -> int:
    from arpo_engine.agent_spec import run_agent
    from arpo_engine.rollout.render import format_group

    options: dict[str, dict[str, Any]] = {}
    for item in args.tool_option or []:
        key, sep, value = item.partition("=")
        tool, dot, option = key.partition(".")
        if not sep or not dot:
            raise ConfigError(f"--tool-option {item!r}: expected TOOL.OPTION=VALUE, e.g. search.corpus_path=docs.jsonl")
        try:
            options.setdefault(tool, {})[option] = json.loads(value)
        except json.JSONDecodeError:
            options.setdefault(tool, {})[option] = value
    group = run_agent(args.checkpoint, args.question, tool_options=options)
    path = group.paths[0]
    print(format_group(group))
    print()
    print("trajectory:")
    print(path.text)
    return 0


def _override(config: RunConfig, args: argparse.Namespace) -> RunConfig:
    raw = config.to_dict()
    if getattr(args, "steps", None):
        raw["train"]["steps"] = args.steps
    if getattr(args, "sampler", None):
        raw["rollout"]["sampler"] = args.sampler
    if getattr(args, "group_size", None):
        raw["rollout"]["group_size"] = args.group_size
        raw["rollout"]["initial_samples"] = min(raw["rollout"]["initial_samples"], args.group_size)
    return RunConfig.from_dict(raw).validate()


def _kv_for(config: RunConfig, prompts: int) -> int | None:
    """vLLM's KV cache sized for these prompts' paths (arpo_engine.memory), not a share of RAM."""
    if config.rollout.sampler != "vllm":
        return None
    from arpo_engine.memory import kv_cache_bytes
    from arpo_engine.models import resolve_model_path

    raw = config.to_dict()
    raw["model"]["path"] = str(resolve_model_path(config.model.path))
    raw["optim"]["train_batch_prompts"] = max(1, prompts)
    return kv_cache_bytes(RunConfig.from_dict(raw))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m arpo_engine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ro = sub.add_parser("rollout", help="roll out a few prompts and print their trees and metrics")
    ro.add_argument("config", help="run config (YAML or JSON)")
    ro.add_argument("--prompts", type=int, default=2, help="how many prompts to roll out (default 2)")
    ro.add_argument("--sampler", choices=["vllm", "transformers"], help="override rollout.sampler")
    ro.add_argument("--group-size", type=int, help="override rollout.group_size (M)")
    ro.add_argument("--json", help="also write the rollout trees and metrics to this JSON file")
    ro.set_defaults(func=_rollout)
    tr = sub.add_parser("train", help="SFT cold start (if configured), then ARPO; resumes after a crash")
    tr.add_argument("config", help="run config (YAML or JSON)")
    tr.add_argument("--preset", help="apply a named preset: arpo_paper, grpo_baseline, aepo")
    tr.add_argument("--run-id", help="checkpoint folder name (default: the config's name)")
    tr.add_argument("--steps", type=int, help="override train.steps")
    tr.add_argument("--sampler", choices=["vllm", "transformers"], help="override rollout.sampler")
    tr.add_argument("--metrics", help="append each step's metrics as JSON lines to this file")
    tr.add_argument("--restart", action="store_true", help="delete this run id's checkpoints and start at step 0")
    tr.add_argument("--show-rollouts", action="store_true", help="print the first prompt's rollout tree each step")
    tr.set_defaults(func=_train)
    ev = sub.add_parser("eval", help="greedy held-out accuracy of a model on data.eval_path")
    ev.add_argument("config", help="run config (YAML or JSON)")
    ev.add_argument("--model", help="model folder or bundled name (default: the config's model.path)")
    ev.add_argument("--prompts", type=int, help="evaluate the first N held-out prompts (default: train.eval_prompts)")
    ev.add_argument("--sampler", choices=["vllm", "transformers"], help="override rollout.sampler")
    ev.add_argument("--json", help="also write the metrics and trajectories to this JSON file")
    ev.set_defaults(func=_eval)
    sf = sub.add_parser("sft", help="only the SFT cold start: fine-tune on demonstrations and save")
    sf.add_argument("config", help="run config with an sft section")
    sf.add_argument("--out", required=True, help="folder for the fine-tuned model")
    sf.set_defaults(func=_sft)
    ag = sub.add_parser("agent", help="answer a question with a checkpoint's agent (its tools, sandboxed)")
    ag.add_argument("checkpoint", help="a step folder with agent.json (e.g. runs/run-x/latest)")
    ag.add_argument("question")
    ag.add_argument(
        "--tool-option", action="append", metavar="TOOL.OPTION=VALUE",
        help="set a tool option agent.json cannot carry, e.g. search.corpus_path=corpus.jsonl",
    )  # fmt: skip
    ag.set_defaults(func=_agent)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except DataError as exc:  # bad data: every bad row by line, not a traceback
        print(f"data error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
