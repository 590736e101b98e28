"""Assembles engine runs from a RunConfig: the SFT cold start and the ARPO training loop.

The CLI (`python -m arpo_engine sft|train`) and, later, the worker call these; everything heavy
(models, samplers, tools) is built here and handed to the pure stages as injected dependencies.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from arpo_engine.config import ConfigError, RunConfig


def load_policy(path: str | Path) -> tuple[Any, Any]:
    """A Hugging Face causal LM (float32 on CPU) and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()
    return model, tokenizer


def system_prompt_for(config: RunConfig, tools: Any) -> str:
    from arpo_engine.rollout.formats import get_format

    return get_format(config.rollout.call_format).system_prompt(tools, config.system_prompt)


def check_sft_inputs(config: RunConfig) -> None:
    if not config.sft.data_path:
        raise ConfigError("sft.data_path must name a demonstrations file")
    if not Path(config.sft.data_path).is_file():
        raise ConfigError(f"sft.data_path: no such file {config.sft.data_path}")


def save_model(model: Any, tokenizer: Any, out_dir: Path) -> Path:
    """Write a plain Hugging Face folder atomically (temp folder, then rename)."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def run_sft_stage(
    config: RunConfig,
    out_dir: Path,
    *,
    log: Callable[[str], None] = print,
    should_stop: Callable[[], bool] = lambda: False,
) -> Path:
    """SFT the configured model on the demonstrations and save it to out_dir."""
    from arpo_engine.data import load_sft_demos
    from arpo_engine.models import resolve_model_path
    from arpo_engine.sft import encode_demo, run_sft
    from arpo_engine.tools.registry import build_tools

    check_sft_inputs(config)
    demos = load_sft_demos(config.sft.data_path)
    if config.sft.max_examples:
        demos = demos[: config.sft.max_examples]
    tools = build_tools(config.tools)
    system = system_prompt_for(config, tools)
    model, tokenizer = load_policy(resolve_model_path(config.model.path))
    examples = [encode_demo(tokenizer, d.messages, d.spans, system) for d in demos]
    longest = max(len(e.prompt_ids) + len(e.response_ids) for e in examples)
    log(f"SFT on {len(examples)} demonstrations (longest {longest} tokens), {config.sft.epochs} epochs")
    started = time.perf_counter()

    def report(update: int, metrics: dict[str, float]) -> None:
        if update == 1 or update % 10 == 0:
            log(f"  sft update {update}: loss {metrics['sft/loss']:.4f} ({time.perf_counter() - started:.0f} s)")

    import torch

    torch.manual_seed(config.seed)
    run_sft(
        model,
        examples,
        config.sft,
        pad_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        seed=config.seed,
        on_step=report,
        should_stop=should_stop,
    )
    path = save_model(model, tokenizer, out_dir)
    log(f"SFT model saved to {path}")
    return path


def seeded_rng(config: RunConfig) -> random.Random:
    return random.Random(config.seed)
