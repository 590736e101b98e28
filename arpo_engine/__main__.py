"""Command line: `python -m arpo_engine rollout <config.yaml>` (and, later, `train`)."""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from arpo_engine.config import ConfigError, RunConfig, load_config


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
    sampler = make_sampler(config.model, config.rollout, seed=config.seed)
    try:
        deps = RolloutDeps(sampler, tools, get_format(config.rollout.call_format), random.Random(config.seed))
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


def _override(config: RunConfig, args: argparse.Namespace) -> RunConfig:
    raw = config.to_dict()
    if args.sampler:
        raw["rollout"]["sampler"] = args.sampler
    if args.group_size:
        raw["rollout"]["group_size"] = args.group_size
        raw["rollout"]["initial_samples"] = min(raw["rollout"]["initial_samples"], args.group_size)
    return RunConfig.from_dict(raw).validate()


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
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
