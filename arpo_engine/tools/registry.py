"""Tool kinds by name: `ToolConfig` in, a ready `Tool` out (ARPO_SPEC.md §1, PRODUCT.md Tools).

Each kind is one factory function registered with `@register_tool_kind("kind")`; it reads the
kind's options and builds the tool. Adding a kind is one more decorated factory here. Kinds that
take secrets (`http` headers) register with `register_secret_tool_kind`: the caller passes the
secrets to `build_tools(..., secrets=)` by tool name, so they never live in a (stored) ToolConfig.
`build_tools` also checks what every kind shares: a user-supplied OpenAI function schema must name
the tool and declare the kind's primary argument, because the `tags` call format fills that
argument from the tag body.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from arpo_engine.config import ConfigError, ToolConfig
from arpo_engine.tools.base import Tool
from arpo_engine.tools.calculator import CalculatorTool
from arpo_engine.tools.http import HttpTool
from arpo_engine.tools.python_sandbox import PythonTool, SandboxLimits
from arpo_engine.tools.search import SearchTool

ToolFactory = Callable[[ToolConfig], Tool]
SecretToolFactory = Callable[[ToolConfig, Mapping[str, str]], Tool]

TOOL_KINDS: dict[str, ToolFactory] = {}
SECRET_TOOL_KINDS: dict[str, SecretToolFactory] = {}
"""Kinds whose factory also takes secrets (e.g. http headers); they are in TOOL_KINDS too, secret-less."""


def register_tool_kind(kind: str) -> Callable[[ToolFactory], ToolFactory]:
    """Decorator: make `factory` the builder of tools whose config says `kind: <kind>`."""

    def register(factory: ToolFactory) -> ToolFactory:
        if kind in TOOL_KINDS:
            raise ValueError(f"tool kind {kind!r} is already registered")
        TOOL_KINDS[kind] = factory
        return factory

    return register


def register_secret_tool_kind(kind: str) -> Callable[[SecretToolFactory], SecretToolFactory]:
    """Decorator: like `register_tool_kind`, for a factory that also takes the tool's secrets."""

    def register(factory: SecretToolFactory) -> SecretToolFactory:
        register_tool_kind(kind)(lambda config: factory(config, {}))
        SECRET_TOOL_KINDS[kind] = factory
        return factory

    return register


def build_tools(
    configs: Sequence[ToolConfig], *, secrets: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, Tool]:
    """Tools by name, in config order; ConfigError (a ValueError) naming the tool when one is unusable.

    `secrets` maps a tool name to its secrets (http: header name -> value), kept out of the config.
    """
    secrets = secrets or {}
    unknown = sorted(set(secrets) - {c.name for c in configs})
    if unknown:
        raise ConfigError(f"secrets given for {unknown[0]!r}, which is not a configured tool")
    tools: dict[str, Tool] = {}
    for config in configs:
        if config.name in tools:
            raise ConfigError(f"tool {config.name!r} is defined twice")
        tools[config.name] = build_tool(config, secrets=secrets.get(config.name))
    return tools


def build_tool(config: ToolConfig, *, secrets: Mapping[str, str] | None = None) -> Tool:
    factory = TOOL_KINDS.get(config.kind)
    if factory is None:
        known = ", ".join(sorted(TOOL_KINDS))
        raise ConfigError(f"tool {config.name!r}: unknown kind {config.kind!r} (known kinds: {known})")
    if secrets and config.kind not in SECRET_TOOL_KINDS:
        raise ConfigError(f"tool {config.name!r}: {config.kind} tools take no secrets")
    tool = SECRET_TOOL_KINDS[config.kind](config, secrets) if secrets else factory(config)
    if config.schema is not None:
        check_schema(config.schema, name=config.name, primary_argument=tool.primary_argument)
    return tool


def check_schema(schema: Any, *, name: str, primary_argument: str) -> None:
    """Reject a user schema the agent loop could not use, saying what to change."""
    where = f"tool {name!r}: schema"
    if not isinstance(schema, Mapping) or schema.get("type") != "function":
        raise ConfigError(f'{where} must be an OpenAI function tool {{"type": "function", "function": …}}')
    function = schema.get("function")
    if not isinstance(function, Mapping):
        raise ConfigError(f'{where}: "function" must be an object with name, description and parameters')
    if function.get("name") != name:
        raise ConfigError(f"{where}: function.name is {function.get('name')!r}, the tool is named {name!r}")
    if not isinstance(function.get("description", ""), str):
        raise ConfigError(f"{where}: function.description must be a string")
    parameters = function.get("parameters")
    if not isinstance(parameters, Mapping) or parameters.get("type") != "object":
        raise ConfigError(f'{where}: function.parameters must be a JSON schema with "type": "object"')
    properties = parameters.get("properties")
    if not isinstance(properties, Mapping) or primary_argument not in properties:
        raise ConfigError(f"{where}: function.parameters.properties must include {primary_argument!r}")
    if not isinstance(properties[primary_argument], Mapping) or properties[primary_argument].get(
        "type", "string"
    ) != "string":
        raise ConfigError(f"{where}: parameter {primary_argument!r} must have type string")
    required = parameters.get("required", [])
    if not isinstance(required, list) or any(r not in properties for r in required):
        raise ConfigError(f"{where}: function.parameters.required must list names from properties")


def read_options(
    config: ToolConfig, spec: Mapping[str, type], *, required: Sequence[str] = ()
) -> dict[str, Any]:
    """The kind's options, type-checked; unknown or missing keys are errors, not silently ignored."""
    where = f"tool {config.name!r} ({config.kind})"
    unknown = sorted(set(config.options) - set(spec))
    if unknown:
        raise ConfigError(f"{where}: unknown option {unknown[0]!r} (known: {', '.join(sorted(spec))})")
    missing = [key for key in required if key not in config.options]
    if missing:
        raise ConfigError(f"{where}: option {missing[0]!r} is required")
    return {key: _check_type(where, key, value, spec[key]) for key, value in config.options.items()}


def _check_type(where: str, key: str, value: Any, expected: type) -> Any:
    if expected is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{where}: option {key!r} must be {expected.__name__}, got {value!r}")


def _description(config: ToolConfig) -> str | None:
    return config.description or None


def _schema(config: ToolConfig) -> dict[str, Any] | None:
    """The user's schema, with `description` (when set) replacing the schema's own."""
    if config.schema is None:
        return None
    schema = copy.deepcopy(dict(config.schema))
    if config.description and isinstance(schema.get("function"), dict):
        schema["function"]["description"] = config.description
    return schema


# ---------------------------------------------------------------------------------------------
# Built-in kinds


@register_tool_kind("python")
def _python_tool(config: ToolConfig) -> Tool:
    options = read_options(
        config,
        {"timeout_s": float, "cpu_s": float, "memory_mb": int, "total_memory_mb": int, "max_processes": int,
         "max_output_bytes": int, "scratch_mb": int, "max_open_files": int},
    )  # fmt: skip
    try:
        limits = SandboxLimits(**options)
    except ValueError as exc:
        raise ConfigError(f"tool {config.name!r}: {exc}") from None
    return PythonTool(config.name, limits=limits, description=_description(config), schema=_schema(config))


@register_tool_kind("search")
def _search_tool(config: ToolConfig) -> Tool:
    options = read_options(
        config, {"corpus_path": str, "top_k": int, "snippet_chars": int}, required=["corpus_path"]
    )
    return SearchTool(config.name, description=_description(config), schema=_schema(config), **options)


@register_tool_kind("calculator")
def _calculator_tool(config: ToolConfig) -> Tool:
    read_options(config, {})
    return CalculatorTool(config.name, description=_description(config), schema=_schema(config))


@register_secret_tool_kind("http")
def _http_tool(config: ToolConfig, secrets: Mapping[str, str]) -> Tool:
    options = read_options(
        config,
        {"url": str, "allowed_hosts": list, "timeout_s": float, "max_response_bytes": int,
         "allow_private_networks": bool},
        required=["url"],
    )  # fmt: skip
    hosts = options.pop("allowed_hosts", [])
    if not all(isinstance(h, str) and h for h in hosts):
        raise ConfigError(f"tool {config.name!r} (http): option 'allowed_hosts' must be a list of host names")
    try:
        return HttpTool(
            config.name, allowed_hosts=hosts, secret_headers=secrets,
            description=_description(config), schema=_schema(config), **options,
        )  # fmt: skip
    except ValueError as exc:
        raise ConfigError(f"tool {config.name!r}: {exc}") from None
