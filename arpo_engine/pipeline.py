"""Assembles engine runs from a RunConfig: the SFT cold start and the ARPO training loop.

The CLI (`python -m arpo_engine sft|train`) and, later, the worker call these; everything heavy
(models, samplers, tools) is built here and handed to the pure stages as injected dependencies.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
    on_progress: Callable[[int, dict[str, float]], None] | None = None,
) -> Path:
    """SFT the configured model on the demonstrations and save it to out_dir.

    `on_progress(update, metrics)` after every optimizer update: `sft/loss`, `sft/progress` (0..1 of the
    planned updates), `sft/update`, `sft/updates_total`, `sft/grad_norm`, `sft/tokens`.
    """
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
    from arpo_engine.rollout.formats import get_format

    fmt = get_format(config.rollout.call_format, tokenizer)
    examples = [encode_demo(tokenizer, d.messages, d.spans, system, fmt) for d in demos]
    if config.sft.max_tokens:
        examples = [e for e in examples if len(e.prompt_ids) + len(e.response_ids) <= config.sft.max_tokens]
        if not examples:
            raise ConfigError(f"no demonstration fits sft.max_tokens={config.sft.max_tokens}")
    from arpo_engine.learner import freeze_lower_layers

    freeze_lower_layers(model, config.optim.trainable_layers)
    longest = max(len(e.prompt_ids) + len(e.response_ids) for e in examples)
    log(f"SFT on {len(examples)} demonstrations (longest {longest} tokens), {config.sft.epochs} epochs")
    started = time.perf_counter()
    total = sft_updates_total(config, len(examples))

    def report(update: int, metrics: dict[str, float]) -> None:
        if on_progress is not None:
            on_progress(update, sft_progress(update, total, metrics))
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


def sft_updates_total(config: RunConfig, examples: int) -> int:
    """Optimizer updates the SFT stage plans (as arpo_engine.sft.run_sft counts them)."""
    import math

    return max(1, math.ceil(config.sft.epochs * examples / config.sft.batch_size))


def sft_progress(update: int, total: int, metrics: Mapping[str, float]) -> dict[str, float]:
    """One SFT update's progress record, in the `sft/` names the run's dashboard shows."""
    return {
        "sft/loss": float(metrics["sft/loss"]),
        "sft/progress": min(1.0, update / total),
        "sft/update": float(update),
        "sft/updates_total": float(total),
        "sft/grad_norm": float(metrics.get("grad/norm", 0.0)),
        "sft/tokens": float(metrics.get("sft/tokens", 0.0)),
    }


def seeded_rng(config: RunConfig) -> random.Random:
    return random.Random(config.seed)


def check_data(config: RunConfig, tokenizer: Any, tools: Any, *, train: bool = True) -> tuple[list[Any], list[Any]]:
    """Load and check the prompts before any model is loaded: every error names its file and line.

    `train=False` (evaluation) neither needs nor reads the training split.
    """
    from arpo_engine.data import DataError, load_samples
    from arpo_engine.rollout.agent import build_prompt_ids

    if train and not config.data.train_path:
        raise ConfigError("data.train_path must name a prompt file")
    system = system_prompt_for(config, tools)
    loaded: list[list[Any]] = []
    for path in (config.data.train_path if train else "", config.data.eval_path):
        if not path:
            loaded.append([])
            continue
        if not Path(path).is_file():
            raise ConfigError(f"no data file at {path}")
        samples = load_samples(path)
        problems = []
        for s in samples:
            n = len(build_prompt_ids(tokenizer, s.messages, system)[0])
            if n > config.data.max_prompt_tokens:
                problems.append(
                    f"line {s.index + 1}: the prompt has {n} tokens with the system prompt, "
                    f"over data.max_prompt_tokens={config.data.max_prompt_tokens}"
                )
            for name in _row_tool_names(s.extra.get("tools")):
                if name not in tools:
                    problems.append(f"line {s.index + 1}: tool {name!r} is not defined by any configured tool schema")
        if problems:
            raise DataError(path, problems)
        loaded.append(samples)
    return loaded[0], loaded[1]


def _row_tool_names(value: Any) -> list[str]:
    """Tool names a dataset row asks for: names, or OpenAI function schemas."""
    if not value:
        return []
    items = value if isinstance(value, list) else [value]
    names = []
    for item in items:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict):
            fn = item.get("function", item)
            if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                names.append(fn["name"])
    return names


@dataclass
class RunPlan:
    """What a training run starts from, found before any policy loads (shared by the in-process and Ray paths)."""

    tools: Any
    scorer: Any
    manager: Any
    """The run's CheckpointManager."""
    point: Any
    """The ResumePoint to resume from, or None for a fresh start."""
    start_path: Path
    """The starting policy: the base model, or the SFT cold start's folder (the KL reference)."""
    tokenizer: Any
    train_samples: list[Any]
    eval_samples: list[Any]
    cold_start: bool
    """The config asks for an SFT cold start (`sft.data_path`)."""

    @property
    def needs_sft(self) -> bool:
        """The cold start is still to do: a fresh run whose SFT model is not saved yet."""
        return self.cold_start and self.point is None and not (self.start_path / "config.json").is_file()


def plan_run(
    config: RunConfig, *, run_id: str | None = None, tool_secrets: Mapping[str, Mapping[str, str]] | None = None
) -> RunPlan:
    """Tools, scorer, checkpoints and checked data of a run; loads no model (only a tokenizer)."""
    from transformers import AutoTokenizer

    from arpo_engine.checkpoint import CheckpointManager
    from arpo_engine.models import resolve_model_path
    from arpo_engine.tools.registry import build_tools
    from arpo_engine.trainer import make_scorer

    tools = build_tools(config.tools, secrets=tool_secrets)
    scorer = make_scorer(config)
    manager = CheckpointManager(Path(config.checkpoint.dir), run_id or config.name, config.checkpoint.keep_last)
    point = manager.resume_point()
    base_path = resolve_model_path(config.model.path)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    train_samples, eval_samples = check_data(config, tokenizer, tools)
    start_path = manager.run_dir / "sft-model" if config.sft.data_path else base_path
    cold_start = bool(config.sft.data_path)
    return RunPlan(tools, scorer, manager, point, Path(start_path), tokenizer, train_samples, eval_samples, cold_start)


def policy_path(config: RunConfig, plan: RunPlan) -> Path:
    """The weights the policy loads: the starting policy, or the resume point's (see `_resume_weights`)."""
    if plan.point is None:
        return plan.start_path
    return _resume_weights(config, plan.point, plan.start_path)


def run_training(
    config: RunConfig,
    *,
    run_id: str | None = None,
    log: Callable[[str], None] = print,
    sink: Callable[[int, dict[str, float]], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_rollout: Callable[..., None] | None = None,
    tool_secrets: Mapping[str, Mapping[str, str]] | None = None,
    sft_sink: Callable[[int, dict[str, float]], None] | None = None,
    placement: Any = None,
    on_phase: Callable[[str], None] | None = None,
) -> Any:
    """SFT cold start (if configured and not done), then ARPO; resumes from the last checkpoint.

    `tool_secrets`: per tool name, secrets kept out of the config (http headers), as `build_tools` takes them.
    `sft_sink(update, metrics)`: the cold start's progress and loss after every SFT update (`sft/` names);
    apart from `sink`, whose steps are RL steps. `on_phase`: `evaluating` or `training`, as the loop moves between
    them (`TrainDeps.on_phase`). A config with `distributed.samplers` > 1 or
    `distributed.separate_learner` runs on Ray actors (`arpo_engine.distributed`, placed as `placement` says).
    """
    if config.distributed.enabled:
        from arpo_engine.distributed.driver import run_distributed_training

        return run_distributed_training(
            config, run_id=run_id, log=log, sink=sink, should_stop=should_stop, on_rollout=on_rollout,
            tool_secrets=tool_secrets, sft_sink=sft_sink, placement=placement, on_phase=on_phase,
        )  # fmt: skip
    from arpo_engine.agent_spec import build_agent_spec
    from arpo_engine.checkpoint import DataPosition, restore_optimizer, restore_rng
    from arpo_engine.learner import Learner
    from arpo_engine.lora import load_adapter
    from arpo_engine.rollout.formats import get_format
    from arpo_engine.trainer import DataCursor, TrainDeps, local_rollouts, train

    plan = plan_run(config, run_id=run_id, tool_secrets=tool_secrets)
    tools, manager, point, start_path = plan.tools, plan.manager, plan.point, plan.start_path
    if plan.needs_sft:
        run_sft_stage(config, start_path, log=log, should_stop=should_stop, on_progress=sft_sink)
    model_path = policy_path(config, plan)
    if point is not None:
        log(f"resuming from {point.model_dir} (step {point.step})")

    sampler, sync = make_policy_sampler(config, model_path)
    model = sampler.model if hasattr(sampler, "model") else load_policy(model_path)[0]
    tokenizer = sampler.tokenizer
    learner = Learner(
        model,
        optim=config.optim,
        algorithm=config.algorithm,
        pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        ref_model=load_reference(config, start_path),
        temperature=config.rollout.temperature or 1.0,
        seed=config.seed,
    )
    if learner.precision_note:
        log(learner.precision_note)
    rng = seeded_rng(config)
    cursor = DataCursor(len(plan.train_samples), config.seed, config.data.shuffle)
    start_step = 0
    if point is not None:
        state = manager.resume()
        assert state is not None
        if config.optim.lora_rank:
            load_adapter(model, state.point.resume_dir)
            sync(model)  # a vLLM sampler started from the base weights: give it the resumed policy
        restore_optimizer(learner.optimizer, state)
        restore_rng({"rollout": rng}, state)
        if state.data_position is not None:
            cursor.restore({"epoch": state.data_position.epoch, "index": state.data_position.index})
        start_step = state.step

    call_format = get_format(config.rollout.call_format, tokenizer)
    agent = build_agent_spec(config, tools, call_format)  # agent.json: the checkpoint is a usable agent

    def checkpoint(step: int, metrics: dict[str, float], cur: DataCursor) -> None:
        path = manager.save(
            step,
            model,
            tokenizer,
            run_config=config,
            metrics=metrics,
            optimizer=learner.optimizer,
            rng={"rollout": rng},
            data_position=DataPosition(cur.epoch, cur.index),
            best_metric=metrics.get("eval/accuracy"),
            agent=agent,
        )
        log(f"checkpoint saved: {path}")

    def release_sampler_memory() -> int:
        # the update is always followed by the weight sync, which reloads every weight vLLM had
        release = getattr(sampler, "release_memory", None)
        return int(release(weights=True)) if release is not None else 0

    deps = TrainDeps(
        rollouts=local_rollouts(config, sampler, tools, call_format),
        learner=learner,
        scorer=plan.scorer,
        rng=rng,
        sync_weights=lambda: sync(model),
        release_sampler_memory=release_sampler_memory,
        sink=sink or (lambda step, metrics: None),
        on_rollout=on_rollout,
        checkpoint=checkpoint,
        should_stop=should_stop,
        on_phase=on_phase or (lambda phase: None),
    )
    try:
        return train(config, deps, plan.train_samples, plan.eval_samples, start_step=start_step, cursor=cursor)
    finally:
        sampler.close()


def load_reference(config: RunConfig, start_path: Path) -> Any | None:
    """The KL reference: the frozen starting policy (base or SFT model), also when a run resumes.

    None without KL, and None for LoRA: there the learner's reference is its own base, adapters off.
    """
    if config.algorithm.kl_coef <= 0 or config.optim.lora_rank:
        return None
    return load_policy(start_path)[0]


def _resume_weights(config: RunConfig, point: Any, start_path: Path) -> Path:
    """The weights a resumed run loads: the step folder, or for LoRA the weights its adapters sit on.

    A LoRA run's step folder holds the adapters merged in, which cannot be split again exactly, so
    LoRA resumes from the run's starting weights (base or SFT model) plus the adapters in the resume
    state: the same model as before the crash, bit for bit.
    """
    if bool(config.optim.lora_rank) != point.has_adapter:
        kind = "LoRA adapters" if point.has_adapter else "full weights"
        raise ConfigError(
            f"optim.lora_rank: the checkpoint at step {point.step} trained {kind}; resume with the same setting"
        )
    if not config.optim.lora_rank:
        return Path(point.model_dir)
    if not (Path(start_path) / "config.json").is_file():
        raise ConfigError(f"cannot resume the LoRA adapters: their base model {start_path} is gone")
    return Path(start_path)


def run_evaluation(
    config: RunConfig, model_path: str | Path | None = None, *, log: Callable[[str], None] = print
) -> tuple[dict[str, float], Any]:
    """Greedy held-out evaluation of a model (default: the config's) on data.eval_path.

    Returns the eval metrics (accuracy, reward, tool calls, response length) and the rollout batch.
    """
    from transformers import AutoTokenizer

    from arpo_engine.models import resolve_model_path
    from arpo_engine.rollout.formats import get_format
    from arpo_engine.tools.registry import build_tools
    from arpo_engine.trainer import evaluate_policy, make_scorer

    if not config.data.eval_path:
        raise ConfigError("data.eval_path must name the held-out prompt file")
    path = Path(model_path) if model_path else resolve_model_path(config.model.path)
    tools = build_tools(config.tools)
    _, eval_samples = check_data(config, AutoTokenizer.from_pretrained(path), tools, train=False)
    if config.train.eval_prompts:
        eval_samples = eval_samples[: config.train.eval_prompts]
    log(f"evaluating {path} on {len(eval_samples)} held-out prompts (greedy) …")
    sampler, _ = make_policy_sampler(config, path)
    try:
        return evaluate_policy(
            eval_samples,
            config,
            sampler,
            tools,
            get_format(config.rollout.call_format, sampler.tokenizer),
            make_scorer(config),
        )
    finally:
        sampler.close()


def make_policy_sampler(config: RunConfig, model_path: Path) -> tuple[Any, Callable[[Any], int]]:
    """The sampler and how to push learner weights into it."""
    from arpo_engine.device import release_freed_memory
    from arpo_engine.lora import merged_state_dict
    from arpo_engine.rollout.factory import make_sampler

    model_cfg = _with_model_path(config, model_path)
    from arpo_engine.memory import kv_cache_bytes

    kv = kv_cache_bytes(model_cfg)  # sized to this run's paths, not a fixed share of the machine
    sampler = make_sampler(
        model_cfg.model, model_cfg.rollout, seed=config.seed, device=config.optim.device, kv_cache_bytes=kv
    )
    if hasattr(sampler, "model"):
        return sampler, lambda model: 0  # the learner trains the sampler's own model object

    def push(model: Any) -> int:
        # LoRA adapters merged in, under the plain names: vLLM has no adapter, only the weights
        weights = list(merged_state_dict(model).items())
        sampler.update_weights(weights)
        release_freed_memory()  # the host pages of vLLM's previous weights: not carried into the rollout
        return len(weights)

    return sampler, push


def _with_model_path(config: RunConfig, path: Path) -> RunConfig:
    raw = config.to_dict()
    raw["model"]["path"] = str(path)
    return RunConfig.from_dict(raw)
