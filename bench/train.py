"""Learner throughput vs a plain torch forward/backward of the same batch (issue: engine II).

Both sides train the same model on the same token batch, one optimizer step each, interleaved over
repeats in one process:
- plain: logits = model(ids); log_softmax; gather; masked mean; backward; AdamW step;
- learner: `Learner.update` (chunked log-probs, PPO dual-clip loss, micro-batches, grad clip).
The learner's old log-probs are computed beforehand, as the trainer does, and not timed.
Run: `.venv/bin/python bench/train.py [--model PATH] [--batch 4] [--length 512] [--repeats 3]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
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
    args = parser.parse_args()

    from arpo_engine.config import AlgorithmConfig, OptimConfig
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

    learner = Learner(
        model,
        optim=OptimConfig(lr=1e-7, mini_batch_prompts=args.batch, micro_batch_tokens=tokens),
        algorithm=AlgorithmConfig(),
        pad_token_id=tokenizer.eos_token_id,
    )
    sequences = [
        TrainSequence(i, ids[i, : args.prompt].tolist(), ids[i, args.prompt :].tolist(),
                      [1] * (args.length - args.prompt), [0.5 if i % 2 else -0.5] * (args.length - args.prompt))
        for i in range(args.batch)
    ]
    learner.score(sequences)

    def learn() -> None:
        learner.update(sequences)

    times: dict[str, list[float]] = {"plain": [], "learner": []}
    plain()
    learn()  # warm-up
    for _ in range(args.repeats):
        for name, fn in (("plain", plain), ("learner", learn)):
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    result = {
        "model": args.model,
        "batch": args.batch,
        "length": args.length,
        "threads": torch.get_num_threads(),
        "plain_s": times["plain"],
        "learner_s": times["learner"],
        "plain_tok_s": tokens / statistics.median(times["plain"]),
        "learner_tok_s": tokens / statistics.median(times["learner"]),
    }
    result["ratio"] = result["learner_tok_s"] / result["plain_tok_s"]
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"{args.batch} x {args.length} tokens, {torch.get_num_threads()} threads, median of {args.repeats}:")
    print(f"  plain forward/backward/step: {result['plain_tok_s']:.0f} tok/s")
    print(f"  Learner.update:              {result['learner_tok_s']:.0f} tok/s")
    print(f"  ratio learner / plain:       {result['ratio']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
