"""Is a resolved run config launchable? The engine's own checks, then checks against the run's data and tools.

1. `RunConfig.from_dict(...).validate()`. The engine stops at its first problem; to list them all at
   once, the offending key is set back to its default and the check repeats.
2. The base model: `model.max_model_len` within what the catalogue says the model takes.
3. The data, by the engine's `pipeline.check_data` (every prompt within `data.max_prompt_tokens`
   with the system prompt, every tool a row names defined), run on a torch-free tokenizer of the
   base model (`prompt_tokens.LightTokenizer`).
Every problem is keyed by the dotted config key (or the run field: `dataset`, `tools` …) it belongs to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arpo_engine import config_meta
from arpo_engine.config import ConfigError, RunConfig

MAX_PROBLEMS_SHOWN = 3


@dataclass
class CheckResult:
    errors: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def add(self, key: str, message: str) -> None:
        messages = self.errors.setdefault(key, [])
        if message not in messages:
            messages.append(message)

    @property
    def ok(self) -> bool:
        return not self.errors


_DOTTED = re.compile(r"[a-z_]+(?:\.[a-z_]+)+")


def fields_named(message: str) -> list[str]:
    """The known dotted config keys an engine error message names, in order."""
    known = config_meta.field_map()
    return [m.group(0) for m in _DOTTED.finditer(message) if m.group(0) in known]


def field_of(message: str) -> str:
    """The config key an engine error message is about: the first known dotted key it names."""
    named = fields_named(message)
    if named:
        return named[0]
    if message.startswith(("tools", "tool ")):
        return "tools"
    return "config"


def check_engine(config: Mapping[str, Any], result: CheckResult) -> RunConfig | None:
    """from_dict + validate, collecting every problem.

    After each problem its key (then, if that was not enough, every key the message names) is set back
    to the engine default and the check repeats. Returns the config with those keys reset, so the
    checks after this one still run; None when no reset makes it valid.
    """
    flat = config_meta.flatten(config)
    known = config_meta.field_map()
    reset: set[str] = set()
    for _ in range(2 * len(flat) + 1):
        try:
            return RunConfig.from_dict(config_meta.unflatten(flat)).validate()
        except ConfigError as exc:
            message = str(exc)
            key = field_of(message)
            result.add(key, message)
            candidates = [key] if key not in reset else fields_named(message)
            todo = [k for k in candidates if k in known and not known[k].managed_by and k not in reset]
            if not todo:
                return None
            for k in todo:
                reset.add(k)
                flat[k] = known[k].default
    return None


def check_base_model(config: RunConfig, *, model_limit: int, model_name: str, result: CheckResult) -> None:
    m, d, r = config.model, config.data, config.rollout
    if m.max_model_len > model_limit:
        result.add(
            "model.max_model_len", f"{model_name} takes at most {model_limit} tokens; lower model.max_model_len."
        )
    if d.max_prompt_tokens + r.max_response_tokens > m.max_model_len:
        result.warnings.append(
            f"data.max_prompt_tokens ({d.max_prompt_tokens}) + rollout.max_response_tokens "
            f"({r.max_response_tokens}) exceed model.max_model_len ({m.max_model_len}): responses to the longest "
            "prompts are cut short."
        )


class _NoTokens:
    """Stands in for a tokenizer when the model folder is not on this server: only tool names get checked."""

    def apply_chat_template(self, messages: Any, *, tokenize: bool = False, add_generation_prompt: bool = False) -> str:
        return ""

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": []}


def check_data(config: RunConfig, *, tokenizer_folder: Path | None, result: CheckResult) -> None:
    """The engine's data check, with each problem put at its key: prompt length, undefined tools."""
    from arpo_engine.data import DataError
    from arpo_engine.pipeline import check_data as engine_check_data
    from arpo_engine.tools.registry import build_tools

    from .prompt_tokens import tokenizer_for

    try:
        tools = build_tools(config.tools)
    except (ConfigError, ValueError, OSError) as exc:
        result.add("tools", str(exc))
        return
    tokenizer: Any = _NoTokens()
    if tokenizer_folder is not None:
        tokenizer = tokenizer_for(tokenizer_folder)
    else:
        result.warnings.append("Prompt lengths were not checked: the base model is not prepared on this server.")
    try:
        engine_check_data(config, tokenizer, tools)
    except DataError as exc:
        _report_rows(exc, config, result)
    except ConfigError as exc:
        message = str(exc)
        key = "eval_dataset" if config.data.eval_path and config.data.eval_path in message else "dataset"
        result.add(key, f"The dataset's file is gone ({message}); upload it again.")


def _report_rows(exc: Any, config: RunConfig, result: CheckResult) -> None:
    split = "eval" if str(exc.path) == config.data.eval_path else "training"
    by_key: dict[str, list[str]] = {}
    for problem in exc.errors:
        key = (
            "data.max_prompt_tokens"
            if "data.max_prompt_tokens" in problem
            else "tools"
            if "tool " in problem
            else ("dataset")
        )
        by_key.setdefault(key, []).append(problem)
    for key, problems in by_key.items():
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = f" (and {len(problems) - MAX_PROBLEMS_SHOWN} more)" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        result.add(key, f"{len(problems)} {split} prompt(s) fail: {shown}{more}")
