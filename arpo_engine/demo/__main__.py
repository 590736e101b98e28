"""`python -m arpo_engine.demo generate --out var/demo [--seed 0] [--hops 1,2] …`: write the demo task."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from arpo_engine.demo.build import generate


def _hops(text: str) -> tuple[int, ...]:
    try:
        hops = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected hop counts like 1, 2 or 1,2; got {text!r}") from None
    if not hops or any(h not in (1, 2) for h in hops):
        raise argparse.ArgumentTypeError(f"hop counts must be 1 and/or 2; got {text!r}")
    return hops


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m arpo_engine.demo", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write corpus, train/eval prompts, SFT demos and tool configs")
    gen.add_argument("--out", required=True, help="output folder (created; its demo files are overwritten)")
    gen.add_argument("--seed", type=int, default=0, help="seed of the world and the questions (default 0)")
    gen.add_argument("--entities", type=int, default=200, help="entities in the world (default 200)")
    gen.add_argument("--train", type=int, default=2000, help="training prompts (default 2000)")
    gen.add_argument("--eval", type=int, default=200, help="held-out prompts on unseen entities (default 200)")
    gen.add_argument("--sft", type=int, default=1000, help="SFT demonstrations per format (default 1000)")
    gen.add_argument(
        "--hops",
        type=_hops,
        default=(1, 2),
        help="difficulty: 1 (one entity + arithmetic), 2 (two entities) or 1,2 mixed evenly (default)",
    )
    return parser


def _summary(out: str, manifest: dict[str, Any], seconds: float) -> str:
    def line(split: str) -> str:
        part = manifest[split]
        hops = ", ".join(f"{n} with {h} hop{'s' if h != '1' else ''}" for h, n in part["by_hops"].items())
        return f"  {split:<5} {part['rows']:>5} rows ({hops}; {len(part['by_template'])} templates)"

    return "\n".join(
        [
            f"demo task written to {out} in {seconds:.1f} s (seed {manifest['seed']}, "
            f"{manifest['n_entities']} entities)",
            line("train"),
            line("eval"),
            line("sft"),
            "  files: corpus.jsonl train.jsonl eval.jsonl sft_tags.jsonl sft_hermes.jsonl tools.json "
            "instructions.txt manifest.json",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    try:
        manifest = generate(
            args.out,
            seed=args.seed,
            n_entities=args.entities,
            n_train=args.train,
            n_eval=args.eval,
            n_sft=args.sft,
            hops=args.hops,
        )
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(_summary(args.out, manifest, time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
