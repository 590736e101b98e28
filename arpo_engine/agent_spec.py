"""A checkpoint as a usable agent: `agent.json` and the agent loop that reads it (PRODUCT.md, checkpoint download).

The trained model answers well only with the system prompt and tool protocol it was trained with, so
every step folder carries them in `agent.json`: the system prompt, the tools (kind, OpenAI schema and
options), the call format (how a call ends and how its result is wrapped), the stop sequences and the
limits. `run_agent` rebuilds the tools from it (the python tool sandboxed, as in training) and runs the
same agent loop as training, greedily, one path: `python -m arpo_engine agent <folder> "question"`.

No machine path goes into the file: option values that are absolute paths keep only their last part
(a search tool's corpus must be given again where the agent runs).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from arpo_engine.config import ConfigError, RunConfig, ToolConfig
from arpo_engine.rollout.formats import CallFormat, HermesFormat, TagFormat
from arpo_engine.tools.base import Tool

AGENT_FILE = "agent.json"
AGENT_FORMAT = 1
_PROBE = "\x00OUTPUT\x00"


def portable(value: Any) -> Any:
    """`value` with every absolute path string cut to its last part (config and tool options)."""
    if isinstance(value, Mapping):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v) for v in value]
    if isinstance(value, str) and value.startswith("/") and "\n" not in value:
        return Path(value).name
    return value


def build_agent_spec(config: RunConfig, tools: Mapping[str, Tool], call_format: CallFormat) -> dict[str, Any]:
    """What `agent.json` holds: everything besides the weights that the trained agent needs."""
    before, after = call_format.render_result(_PROBE).split(_PROBE)
    r = config.rollout
    return {
        "format": AGENT_FORMAT,
        "system_prompt": call_format.system_prompt(tools, config.system_prompt),
        "tools": [
            {
                "name": t.name,
                "kind": t.kind,
                "description": t.description,
                "schema": tools[t.name].schema() if t.name in tools else t.schema,
                "options": portable(dict(t.options)),
            }
            for t in config.tools
        ],
        "call_format": {"name": call_format.name, "result_before": before, "result_after": after},
        "stop_sequences": list(call_format.stop_strings(tools)),
        "answer_format": "<answer> … \\boxed{ANSWER} … </answer>",
        "limits": {
            "max_tool_calls": r.max_tool_calls,
            "max_response_tokens": r.max_response_tokens,
            "tool_result_max_chars": r.tool_result_max_chars,
            "max_model_len": config.model.max_model_len,
            "max_prompt_tokens": config.data.max_prompt_tokens,
        },
        "sampling": {"temperature": 0.0, "trained_temperature": r.temperature},
    }


def read_agent_spec(folder: Path | str) -> dict[str, Any]:
    path = Path(folder) / AGENT_FILE
    if not path.is_file():
        raise ConfigError(f"{folder} has no {AGENT_FILE}: not an ARPO Studio checkpoint step folder")
    spec: dict[str, Any] = json.loads(path.read_text())
    if spec.get("format") != AGENT_FORMAT:
        raise ConfigError(f"{path}: agent format {spec.get('format')!r}, expected {AGENT_FORMAT}")
    return spec


class _StoredPrompt:
    """The spec's call format, with its system prompt taken verbatim from agent.json."""

    def __init__(self, inner: CallFormat, prompt: str) -> None:
        self.inner, self.prompt, self.name = inner, prompt, inner.name

    def stop_strings(self, tools: Mapping[str, Tool]) -> tuple[str, ...]:
        return self.inner.stop_strings(tools)

    def parse_call(self, text: str, tools: Mapping[str, Tool]) -> Any:
        return self.inner.parse_call(text, tools)

    def render_call(self, call: Any, tools: Mapping[str, Tool]) -> str:
        return self.inner.render_call(call, tools)

    def render_result(self, output: str) -> str:
        return self.inner.render_result(output)

    def system_prompt(self, tools: Mapping[str, Tool], instructions: str = "") -> str:
        return self.prompt


def agent_call_format(spec: Mapping[str, Any]) -> CallFormat:
    fmt = spec["call_format"]
    inner: CallFormat
    if fmt["name"] == "hermes":
        inner = HermesFormat((fmt["result_before"], fmt["result_after"]))
    elif fmt["name"] == "tags":
        inner = TagFormat()
    else:
        raise ConfigError(f"agent.json: unknown call format {fmt['name']!r}")
    return _StoredPrompt(inner, spec["system_prompt"])


def agent_tool_configs(
    spec: Mapping[str, Any], overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[ToolConfig, ...]:
    """The spec's tools as ToolConfigs; `overrides` (tool name -> options) restore e.g. a corpus path."""
    overrides = overrides or {}
    unknown = sorted(set(overrides) - {t["name"] for t in spec["tools"]})
    if unknown:
        raise ConfigError(f"--tool-option names {unknown[0]!r}, which is not one of the agent's tools")
    return tuple(
        ToolConfig(
            name=t["name"],
            kind=t["kind"],
            description=t.get("description", ""),
            schema=t.get("schema"),
            options={**t.get("options", {}), **overrides.get(t["name"], {})},
        )
        for t in spec["tools"]
    )


def agent_run_config(folder: Path | str, spec: Mapping[str, Any], tools: tuple[ToolConfig, ...]) -> RunConfig:
    """A run config for the agent loop: one greedy path with the trained limits, transformers sampler."""
    limits = spec["limits"]
    raw = {
        "model": {"path": str(folder), "max_model_len": limits["max_model_len"]},
        # a question may be longer than the training prompts were: only the model's length bounds it
        "data": {"max_prompt_tokens": limits["max_model_len"] - 1},
        "tools": [
            {"name": t.name, "kind": t.kind, "description": t.description, "schema": t.schema, "options": t.options}
            for t in tools
        ],
        "rollout": {
            "sampler": "transformers",
            "call_format": spec["call_format"]["name"],
            "group_size": 1,
            "initial_samples": 1,
            "max_tool_calls": limits["max_tool_calls"],
            "max_response_tokens": limits["max_response_tokens"],
            "tool_result_max_chars": limits["tool_result_max_chars"],
        },
        "branching": {"enabled": False},
    }
    return RunConfig.from_dict(raw).validate()


def run_agent(
    folder: Path | str,
    question: str,
    *,
    sampler: Any = None,
    tool_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> Any:
    """Answer `question` with the checkpoint's agent: the rollout group of its one greedy path."""
    from arpo_engine.rollout.agent import RolloutDeps, run_rollouts
    from arpo_engine.rollout.factory import make_sampler
    from arpo_engine.tools.registry import build_tools

    spec = read_agent_spec(folder)
    tool_configs = agent_tool_configs(spec, tool_options)
    config = agent_run_config(folder, spec, tool_configs)
    tools = build_tools(tool_configs)
    own = sampler is None
    sampler = sampler or make_sampler(config.model, config.rollout, seed=0)
    try:
        deps = RolloutDeps(sampler, tools, agent_call_format(spec), random.Random(0))
        batch = run_rollouts([_Question(question)], config, deps, greedy=True)
    finally:
        if own:
            sampler.close()
    return batch.groups[0]


class _Question:
    def __init__(self, text: str) -> None:
        self.messages = [{"role": "user", "content": text}]
