"""Preflight: a handful of rollouts with the starting model before any compute is spent on a run.

It renders one prompt exactly as the model sees it (chat template with the generated system prompt,
ARPO_SPEC.md §1), rolls out a few prompts with the run's tools and scorer (§3), and turns what it saw
into metrics of PRODUCT.md's vocabulary plus warnings a person can act on: a model that never calls
a tool (no cold start, §5), rewards that are all equal (degenerate groups give zero advantage, §4),
answers cut by the response budget.

No branching: N = M paths per prompt, so the cost is bounded and known. On a CPU the transformers
sampler is used (it starts in seconds; vLLM's engine takes about a minute to start here).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from arpo_engine.config import RunConfig

DEFAULT_PROMPTS = 2
DEFAULT_PATHS = 4
MAX_RESPONSE_TOKENS = 512
"""The check's own cap on a path's response; a run with a larger budget is checked up to this."""
CLIP_WARN_FRAC = 0.25
TOOL_ERROR_WARN_RATE = 0.5
SAMPLE_TEXT_CHARS = 2000


@dataclass
class PreflightWarning:
    code: str
    message: str
    """What is wrong and what to do about it, for a person."""


@dataclass
class PreflightReport:
    model: str
    """Which model was checked, by its role ("base model", "SFT model"), never a path of the server."""
    prompt_text: str
    """The first prompt exactly as the model reads it (chat template, system prompt with the tools)."""
    prompt_tokens: int
    metrics: dict[str, float]
    warnings: list[PreflightWarning]
    timings: dict[str, float]
    samples: list[dict[str, Any]] = field(default_factory=list)
    """A few paths: prompt index, text, reward, reason, tool calls, why it ended."""
    settings: dict[str, Any] = field(default_factory=dict)
    """What the check ran: prompts, paths per prompt, response cap, sampler."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def preflight_config(config: RunConfig, *, paths: int, max_response_tokens: int, sampler: str) -> RunConfig:
    """The run's config for the check: no branching, `paths` independent samples, the check's response cap."""
    raw = config.to_dict()
    raw["branching"]["enabled"] = False
    raw["rollout"]["group_size"] = paths
    raw["rollout"]["initial_samples"] = paths
    raw["rollout"]["max_response_tokens"] = min(int(raw["rollout"]["max_response_tokens"]), max_response_tokens)
    raw["rollout"]["sampler"] = sampler
    return RunConfig.from_dict(raw)


def default_sampler(config: RunConfig) -> str:
    """transformers unless a GPU is present and the run asks for vLLM (there its start-up pays off)."""
    if config.rollout.sampler != "vllm":
        return config.rollout.sampler
    try:
        import torch

        return "vllm" if torch.cuda.is_available() else "transformers"
    except ImportError:  # pragma: no cover - the engine always has torch
        return "transformers"


def starting_model(config: RunConfig, run_id: str | None) -> tuple[Path | None, str, bool]:
    """(folder, label, sft_pending): the model RL would start from.

    The run's own SFT model when its cold start has run already; otherwise the configured model, and
    `sft_pending` says whether an SFT stage would come first (the check then sees the model before SFT).
    """
    if config.sft.data_path:
        folder = Path(config.checkpoint.dir) / f"run-{run_id or config.name}" / "sft-model"
        if (folder / "config.json").is_file():
            return folder, "the run's SFT model", False
        return None, "the base model (before the run's SFT cold start)", True
    return None, "the base model", False


def run_preflight(
    config: RunConfig,
    *,
    run_id: str | None = None,
    prompts: int = DEFAULT_PROMPTS,
    paths: int = DEFAULT_PATHS,
    max_response_tokens: int = MAX_RESPONSE_TOKENS,
    sampler: Any = None,
    tool_secrets: Mapping[str, Mapping[str, str]] | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> PreflightReport:
    """Roll out `prompts` training prompts x `paths` paths with the starting model; report and warn.

    `sampler`: an already built Sampler (tests pass a scripted one); by default the starting model is
    loaded into the sampler `default_sampler` names.
    """
    from arpo_engine.models import resolve_model_path
    from arpo_engine.pipeline import check_data
    from arpo_engine.rollout.agent import RolloutDeps, run_rollouts
    from arpo_engine.rollout.formats import get_format
    from arpo_engine.tools.registry import build_tools
    from arpo_engine.trainer import make_scorer, score_groups

    timings: dict[str, float] = {}
    started = time.perf_counter()
    folder, label, sft_pending = starting_model(config, run_id)
    checked = preflight_config(
        config, paths=paths, max_response_tokens=max_response_tokens, sampler=default_sampler(config)
    )
    tools = build_tools(checked.tools, secrets=tool_secrets)
    scorer = make_scorer(checked)
    own_sampler = sampler is None
    if own_sampler:
        from arpo_engine.rollout.factory import make_sampler

        path = folder or resolve_model_path(config.model.path)
        log(f"loading {label} into the {checked.rollout.sampler} sampler")
        from arpo_engine.memory import kv_cache_bytes

        sized = _model_at(checked, path)
        sampler = make_sampler(
            sized.model,
            checked.rollout,
            seed=config.seed,
            device=config.optim.device,
            kv_cache_bytes=kv_cache_bytes(sized) if checked.rollout.sampler == "vllm" else None,
        )
    timings["load_s"] = time.perf_counter() - started
    try:
        t = time.perf_counter()
        train_samples, _ = check_data(checked, sampler.tokenizer, tools)
        chosen = list(train_samples[: max(1, prompts)])
        timings["data_s"] = time.perf_counter() - t
        t = time.perf_counter()
        call_format = get_format(checked.rollout.call_format, sampler.tokenizer)
        deps = RolloutDeps(sampler, tools, call_format, random.Random(config.seed))
        log(
            f"rolling out {len(chosen)} prompts x {paths} paths (responses up to {checked.rollout.max_response_tokens})"
        )
        batch = run_rollouts(chosen, checked, deps)
        timings["rollout_s"] = time.perf_counter() - t
        t = time.perf_counter()
        rewards = score_groups(batch.groups, scorer, checked)
        timings["reward_s"] = time.perf_counter() - t
    finally:
        if own_sampler:
            sampler.close()
    metrics = preflight_metrics(batch.groups, rewards, batch.metrics)
    capped = checked.rollout.max_response_tokens < config.rollout.max_response_tokens
    warnings = preflight_warnings(
        metrics,
        has_tools=bool(tools),
        sft_pending=sft_pending,
        budget=checked.rollout.max_response_tokens,
        run_budget=config.rollout.max_response_tokens,
        capped=capped,
        rewards=[r.score for group in rewards for r in group],
    )
    timings["total_s"] = time.perf_counter() - started
    first = batch.groups[0]
    return PreflightReport(
        model=label,
        prompt_text=first.prompt_text,
        prompt_tokens=len(first.prompt_ids),
        metrics=metrics,
        warnings=warnings,
        timings={k: round(v, 3) for k, v in timings.items()},
        samples=_samples(batch.groups, rewards),
        settings={
            "prompts": len(chosen),
            "paths_per_prompt": paths,
            "max_response_tokens": checked.rollout.max_response_tokens,
            "run_max_response_tokens": config.rollout.max_response_tokens,
            "sampler": checked.rollout.sampler,
            "branching": False,
        },
    )


def _model_at(config: RunConfig, path: Path) -> RunConfig:
    raw = config.to_dict()
    raw["model"]["path"] = str(path)
    return RunConfig.from_dict(raw)


def preflight_metrics(
    groups: Sequence[Any], rewards: Sequence[Sequence[Any]], rollout: Mapping[str, float]
) -> dict[str, float]:
    """PRODUCT.md's names where one exists; `tools/call_rate` is the fraction of paths with a tool call."""
    from arpo_engine.trainer import reward_metrics

    paths = [p for g in groups for p in g.paths]
    scores = [[r.score for r in group] for group in rewards]
    degenerate = [len(set(s)) <= 1 for s in scores if s]
    out = {
        **reward_metrics(rewards),
        "tools/call_rate": statistics.fmean([1.0 if p.tool_calls else 0.0 for p in paths]) if paths else 0.0,
        "groups/degenerate_frac": statistics.fmean([1.0 if d else 0.0 for d in degenerate]) if degenerate else 0.0,
    }
    for key in ("tools/calls_per_traj", "tools/calls_total", "tools/error_rate", "tools/limit_hits",
                "response/len_mean", "response/clip_frac", "entropy/token_mean", "time/rollout_s",
                "throughput/rollout_tok_s", "rollout/paths"):  # fmt: skip
        if key in rollout:
            out[key] = float(rollout[key])
    return out


def preflight_warnings(
    metrics: Mapping[str, float],
    *,
    has_tools: bool,
    sft_pending: bool,
    budget: int,
    run_budget: int,
    capped: bool,
    rewards: Sequence[float],
) -> list[PreflightWarning]:
    """Warnings, each with what to do; an empty list means nothing stood out."""
    out: list[PreflightWarning] = []
    n = int(metrics.get("rollout/paths", len(rewards)))
    if has_tools and metrics.get("tools/calls_total", 0.0) == 0:
        if sft_pending:
            message = (f"The model never calls a tool ({n} of {n} paths without a call). The run's SFT cold start "
                       "comes first and should teach it; if the run still calls none, add SFT demonstrations that "
                       "show tool calls.")  # fmt: skip
        else:
            message = (
                f"The model never calls a tool ({n} of {n} paths without a call): add SFT demonstrations "
                "(a cold start that shows tool calls), or start from a model that already calls tools."
            )
        out.append(PreflightWarning("no_tool_calls", message))
    if rewards and len(set(rewards)) == 1:
        out.append(PreflightWarning(
            "equal_rewards",
            f"Every reward is equal ({rewards[0]:g} on all {len(rewards)} paths): RL has no signal. "
            + _equal_rewards_hint(metrics),
        ))  # fmt: skip
    elif metrics.get("groups/degenerate_frac", 0.0) >= 1.0:
        out.append(PreflightWarning(
            "degenerate_groups",
            "Within each prompt every path got the same reward: RL has no signal there. Raise "
            "rollout.group_size or rollout.temperature, or use prompts of a more even difficulty.",
        ))  # fmt: skip
    clip = metrics.get("response/clip_frac", 0.0)
    if clip >= CLIP_WARN_FRAC:
        share = f"{round(clip * n)} of {n} paths"
        if capped:
            out.append(PreflightWarning(
                "check_cap",
                f"{share} reached this check's cap of {budget} tokens (the run allows {run_budget}); the check "
                "cannot tell whether the run's budget suffices.",
            ))  # fmt: skip
        else:
            out.append(PreflightWarning(
                "clipped",
                f"Answers are cut by the response budget ({share} hit {budget} tokens): raise "
                "rollout.max_response_tokens.",
            ))  # fmt: skip
    if metrics.get("tools/calls_total", 0.0) > 0 and metrics.get("tools/error_rate", 0.0) >= TOOL_ERROR_WARN_RATE:
        out.append(PreflightWarning(
            "tool_errors",
            f"{metrics['tools/error_rate']:.0%} of the tool calls failed: try the tools on their page, and check "
            "their limits (timeout, memory) and the arguments the model writes.",
        ))  # fmt: skip
    return out


def _equal_rewards_hint(metrics: Mapping[str, float]) -> str:
    if metrics.get("format/ok_frac", 0.0) == 0:
        return ("No answer follows the format the scorer requires, so each gets the format penalty: add SFT "
                "demonstrations of the answer format, or check reward.scorer and the system prompt.")  # fmt: skip
    if metrics.get("accuracy", 0.0) >= 1.0:
        return "Every answer is right: the prompts are too easy for this model; use harder ones."
    return "Raise rollout.group_size or rollout.temperature, or use prompts of a more even difficulty."


def _samples(groups: Sequence[Any], rewards: Sequence[Sequence[Any]], limit: int = 4) -> list[dict[str, Any]]:
    out = []
    for group, group_rewards in zip(groups, rewards, strict=True):
        for path, reward in zip(group.paths, group_rewards, strict=True):
            text = path.text
            out.append({
                "prompt_index": group.prompt_index,
                "path": path.id,
                "text": text[:SAMPLE_TEXT_CHARS] + ("…" if len(text) > SAMPLE_TEXT_CHARS else ""),
                "reward": reward.score,
                "reason": reward.reason,
                "tool_calls": len(path.tool_calls),
                "tokens": len(path.token_ids),
                "finish_reason": path.finish_reason or "",
            })  # fmt: skip
    # one path per prompt first, so the few shown cover every prompt
    out.sort(key=lambda s: (s["path"], s["prompt_index"]))
    return out[:limit]
