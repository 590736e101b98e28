"""Which base model fits which GPU: the engine's own memory estimate (arpo_engine.memory) per model and mode.

Estimates, not measurements: the same numbers the service asks Ray for before it starts a run. Measured
peaks on a real GPU come from `bench/gpu_check.sh` (docs/benchmarks.md). Shapes are the models' published
config.json values; the run is the paper's algorithm at a stated, smaller batch (the KV cache grows linearly
with prompts x group size). Prints the markdown table of docs/deploy.md, "Sizing".

    .venv/bin/python bench/sizing.py [--prompts 8] [--group-size 16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from arpo_engine.config import RunConfig
from arpo_engine.memory import ModelShape, estimate

# config.json fields that arpo_engine.memory.ModelShape reads, as each model publishes them.
SHAPES: dict[str, dict[str, int | bool]] = {
    "SmolLM2-135M-Instruct": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                                  num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                                  tie_word_embeddings=True),
    "Qwen2.5-0.5B-Instruct": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                                  num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                                  tie_word_embeddings=True),
    "Qwen2.5-1.5B-Instruct": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                                  num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
                                  tie_word_embeddings=True),
    "Qwen2.5-3B-Instruct": dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                                num_attention_heads=16, num_key_value_heads=2, vocab_size=151936,
                                tie_word_embeddings=True),
    "Qwen2.5-7B-Instruct": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                                num_attention_heads=28, num_key_value_heads=4, vocab_size=152064,
                                tie_word_embeddings=False),
    "Llama-3.1-8B-Instruct": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                  num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                                  tie_word_embeddings=False),
}  # fmt: skip
GPUS_GB = {"24 GB (L4, A10G, RTX 4090)": 24, "48 GB (L40S, A6000)": 48, "80 GB (A100, H100)": 80, "141 GB (H200)": 141}


def run_config(model_dir: Path, *, prompts: int, group_size: int, lora: bool) -> RunConfig:
    optim: dict[str, object] = {"train_batch_prompts": prompts, "mini_batch_prompts": min(prompts, 16)}
    optim |= {"precision": "bf16", "activation_checkpointing": True, "device": "cuda"}
    if lora:
        optim["lora_rank"] = 16
    return RunConfig.from_dict(
        {
            "model": {"path": str(model_dir), "dtype": "bfloat16", "max_model_len": 8192},
            "rollout": {"group_size": group_size, "initial_samples": group_size // 2, "device": "cuda"},
            "optim": optim,
        }
    )


def smallest_gpu(total_gb: float) -> str:
    fitting = [name for name, size in GPUS_GB.items() if total_gb <= size * 0.9]  # 10 % for CUDA context, fragmentation
    return fitting[0].split(" (")[0] if fitting else "more than one GPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=8, help="optim.train_batch_prompts")
    parser.add_argument("--group-size", type=int, default=16, help="rollout.group_size (M)")
    args = parser.parse_args()
    gb = 1e9
    print(f"Batch: {args.prompts} prompts x M={args.group_size} paths, prompt 1024 + response 4096 tokens, bf16.\n")
    print("| model | params | KV cache | full fine-tune: total | fits | LoRA r=16: total | fits |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for name, shape in SHAPES.items():
            folder = Path(tmp) / name
            folder.mkdir()
            (folder / "config.json").write_text(json.dumps(shape))
            full = estimate(run_config(folder, prompts=args.prompts, group_size=args.group_size, lora=False), gpu=True)
            lora = estimate(run_config(folder, prompts=args.prompts, group_size=args.group_size, lora=True), gpu=True)
            params = ModelShape.from_config_file(folder / "config.json").params
            print(
                f"| {name} | {params / 1e9:.2f} B | {full.kv_cache_bytes / gb:.1f} GB | "
                f"{full.total_bytes / gb:.1f} GB | {smallest_gpu(full.total_bytes / gb)} | "
                f"{lora.total_bytes / gb:.1f} GB | {smallest_gpu(lora.total_bytes / gb)} |"
            )


if __name__ == "__main__":
    main()
