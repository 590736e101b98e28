"""Learner throughput vs a plain torch forward/backward of the same batch (issue: engine II).

Both sides train the same model on the same token batch, one optimizer step each, interleaved over
repeats in one process:
- plain: logits = model(ids); log_softmax; gather; masked mean; backward; AdamW step;
- learner: `Learner.update` (chunked log-probs, PPO dual-clip loss, micro-batches, grad clip), with its
  old log-probs cleared before each step as in training (the first mini-batch takes them from its own
  forward pass), in fp32 and, as a third side, with `optim.precision: bf16` autocast.
Only the response tokens are trained (`--prompt` tokens per row are context), as in RL.
Run: `.venv/bin/python bench/train.py [--model PATH] [--batch 4] [--length 512] [--repeats 3]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "var" / "models" / "smollm2-135m"))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--prompt", type=int, default=128, help="prompt tokens per sequence (not trained)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench_train.json"))
    parser.add_argument("--tree", action="store_true", help="only the tree section (tree-packed vs path by path)")
    parser.add_argument("--tree-prompts", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=8)
    args = parser.parse_args()
    if args.tree:
        return tree_main(args)

    from arpo_engine.config import AlgorithmConfig, OptimConfig
    from arpo_engine.device import native_bf16
    from arpo_engine.learner import Learner, TrainSequence
    from arpo_engine.pipeline import load_policy

    torch.manual_seed(0)
    model, tokenizer = load_policy(args.model)
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (args.batch, args.length))
    mask = torch.zeros(args.batch, args.length - 1)
    mask[:, args.prompt - 1 :] = 1.0
    tokens = args.batch * args.length
    plain_opt = torch.optim.AdamW(model.parameters(), lr=1e-7)

    def plain() -> None:
        plain_opt.zero_grad(set_to_none=True)
        logits = model(input_ids=ids).logits[:, :-1]  # (B, T-1, V)
        logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        loss = -(logp * mask).sum() / mask.sum()
        loss.backward()
        plain_opt.step()

    def learner_step(precision: str) -> Callable[[], None]:
        learner = Learner(
            model,
            optim=OptimConfig(lr=1e-7, mini_batch_prompts=args.batch, micro_batch_tokens=tokens, precision=precision),
            algorithm=AlgorithmConfig(),
            pad_token_id=tokenizer.eos_token_id,
        )
        n = args.length - args.prompt

        def learn() -> None:
            sequences = [
                TrainSequence(i, ids[i, : args.prompt].tolist(), ids[i, args.prompt :].tolist(), [1] * n,
                              [0.5 if i % 2 else -0.5] * n)
                for i in range(args.batch)
            ]
            learner.update(sequences)

        return learn

    sides: dict[str, Callable[[], None]] = {"plain": plain, "learner": learner_step("fp32")}
    bf16 = native_bf16(torch.device("cpu"))  # else `bf16` computes in fp32: a second fp32 side, not a bf16 one
    if bf16:
        sides["learner_bf16"] = learner_step("bf16")
    times: dict[str, list[float]] = {name: [] for name in sides}
    for fn in sides.values():
        fn()  # warm-up
    for _ in range(args.repeats):
        for name, fn in sides.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    result: dict[str, object] = {
        "model": str(Path(args.model).resolve().relative_to(ROOT)) if Path(args.model).resolve().is_relative_to(ROOT)
        else args.model,
        "batch": args.batch,
        "length": args.length,
        "prompt": args.prompt,
        "threads": torch.get_num_threads(),
        **{f"{name}_s": t for name, t in times.items()},
    }
    rates = {name: tokens / statistics.median(t) for name, t in times.items()}
    result.update({f"{name}_tok_s": rate for name, rate in rates.items()})
    result["ratio"] = rates["learner"] / rates["plain"]
    if bf16:
        result["ratio_bf16"] = rates["learner_bf16"] / rates["plain"]
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"{args.batch} x {args.length} tokens ({args.prompt} prompt), {torch.get_num_threads()} threads, "
          f"median of {args.repeats}:")
    print(f"  plain forward/backward/step: {rates['plain']:.0f} tok/s")
    print(f"  Learner.update (fp32):       {rates['learner']:.0f} tok/s  ({result['ratio']:.2f}x)")
    if bf16:
        print(f"  Learner.update (bf16):       {rates['learner_bf16']:.0f} tok/s  ({result['ratio_bf16']:.2f}x)")
    else:
        print("  Learner.update (bf16):       not run, this CPU has no native bf16 (AVX512-BF16 or AMX)")
    return 0


def tree_main(args: argparse.Namespace) -> int:
    """ARPO trees recorded on the demo prompts: the update tree-packed vs path by path, and GRPO at equal M.

    Same model, same learner settings as the demo run (precision auto, top 8 blocks trainable, activation
    checkpointing), each side with its own learner on a copy of the model, interleaved, median of
    --repeats after one warm-up round.
    """
    import copy

    from arpo_engine.config import AlgorithmConfig, OptimConfig
    from arpo_engine.learner import Learner
    from arpo_engine.pipeline import load_policy
    from arpo_engine.tree_pack import unique_tokens
    from tests.trees import record_trees, train_sequences

    model, tokenizer = load_policy(args.model)
    m = args.group_size
    arpo = train_sequences(record_trees(args.tree_prompts, group_size=m, initial=m // 2, words=60))
    grpo = train_sequences(record_trees(args.tree_prompts, group_size=m, branching=False, words=60))
    sides = {"arpo_tree": (arpo, True), "arpo_paths": (arpo, False), "grpo_tree": (grpo, True), "grpo_paths": (grpo, False)}
    learners = {
        name: Learner(copy.deepcopy(model), optim=OptimConfig(lr=1e-7, mini_batch_prompts=args.tree_prompts,
                      micro_batch_tokens=16384, precision="auto", trainable_layers=8, tree_pack=packed,
                      activation_checkpointing=True),
                      algorithm=AlgorithmConfig(), pad_token_id=tokenizer.eos_token_id)
        for name, (_, packed) in sides.items()
    }  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in sides}
    for repeat in range(args.repeats + 1):
        for name, (batch, _) in sides.items():
            fresh = copy.deepcopy(batch)
            started = time.perf_counter()
            learners[name].update(fresh)
            if repeat:
                times[name].append(time.perf_counter() - started)
    result: dict[str, object] = {f"{name}_s": t for name, t in times.items()}
    med = {name: statistics.median(t) for name, t in times.items()}
    counts = {
        "arpo_tokens": sum(s.length for s in arpo), "arpo_unique": unique_tokens(arpo),
        "arpo_trained": sum(sum(s.mask) for s in arpo), "grpo_tokens": sum(s.length for s in grpo),
        "grpo_unique": unique_tokens(grpo), "grpo_trained": sum(sum(s.mask) for s in grpo),
    }  # fmt: skip
    precision = next(iter(learners.values())).precision
    result.update(counts, prompts=args.tree_prompts, group_size=m, threads=torch.get_num_threads(), precision=precision)
    result["speedup_arpo"] = med["arpo_paths"] / med["arpo_tree"]
    result["arpo_vs_grpo_paths"] = med["arpo_tree"] / med["grpo_paths"]
    result["arpo_vs_grpo_tree"] = med["arpo_tree"] / med["grpo_tree"]
    out = Path(args.out).with_name("bench_train_tree.json")
    out.write_text(json.dumps(result, indent=1))
    print(f"{args.tree_prompts} prompts x M={m}, {precision}, median of {args.repeats}:")
    print("| update | tokens over paths | distinct tokens | trained tokens | seconds |")
    print("|---|---|---|---|---|")
    for name, label in (("arpo_tree", "ARPO, tree-packed"), ("arpo_paths", "ARPO, path by path"),
                        ("grpo_tree", "GRPO, tree-packed"), ("grpo_paths", "GRPO, path by path")):  # fmt: skip
        kind = name.split("_")[0]
        unique = counts[f"{kind}_unique"] if name.endswith("tree") else counts[f"{kind}_tokens"]
        print(f"| {label} | {counts[f'{kind}_tokens']} | {unique} | {counts[f'{kind}_trained']} | {med[name]:.1f} |")
    print(f"tree-packed / path by path on ARPO trees: {result['speedup_arpo']:.2f}x faster; ARPO (tree) / GRPO: "
          f"{result['arpo_vs_grpo_paths']:.2f}x of GRPO path by path, {result['arpo_vs_grpo_tree']:.2f}x of GRPO tree-packed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
