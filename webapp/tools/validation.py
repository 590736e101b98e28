"""Checks of a tool definition, with errors at the field: the schema (jsonschema + our shape rules),
the name against each call format, and the kind's limits, using the engine's own defaults and checks.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from arpo_engine.config import ConfigError
from arpo_engine.tools import calculator, http, python_sandbox, search
from arpo_engine.tools.base import function_schema
from arpo_engine.tools.registry import check_schema
from arpo_engine.tools.sandbox_report import SandboxLimits

CALL_FORMATS = ("tags", "hermes")
RESERVED_TAGS = frozenset({"think", "answer", "result", "tool_call", "tool_response"})
"""Tags the `tags` format and the answer rules already use: a tool of that name would be ambiguous."""
_TAG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_HERMES_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # OpenAI's rule for function names

PRIMARY_ARGUMENT = {
    "python": python_sandbox.PythonTool.primary_argument,
    "search": search.SearchTool.primary_argument,
    "calculator": calculator.CalculatorTool.primary_argument,
    "http": http.DEFAULT_ARGUMENT,
}
_DEFAULT_DESCRIPTION = {
    "python": python_sandbox.DEFAULT_DESCRIPTION,
    "search": search.DEFAULT_DESCRIPTION,
    "calculator": calculator.DEFAULT_DESCRIPTION,
    "http": http.DEFAULT_DESCRIPTION,
}
_ARGUMENT_HELP = {
    "python": "Python 3 source code to run.",
    "search": "Keywords or a question to search for.",
    "calculator": "The arithmetic expression, e.g. (3 + 4) * 2^10.",
    "http": "The input for the service.",
}


def _default(cls: Any, option: str) -> Any:
    return inspect.signature(cls).parameters[option].default


def default_limits(kind: str) -> dict[str, Any]:
    """The engine's defaults for the kind's limits, to prefill forms."""
    if kind == "python":
        limits = SandboxLimits()
        return {
            "timeout_s": limits.timeout_s, "memory_mb": limits.memory_mb, "max_output_bytes": limits.max_output_bytes
        }
    if kind == "search":
        return {"top_k": _default(search.SearchTool, "top_k")}
    if kind == "http":
        return {
            "timeout_s": _default(http.HttpTool, "timeout_s"),
            "max_output_bytes": _default(http.HttpTool, "max_response_bytes"),
        }
    return {}


def default_schema(kind: str, name: str) -> dict[str, Any]:
    """The schema the engine would use for this kind, as a starting point the user can edit."""
    argument = PRIMARY_ARGUMENT[kind]
    properties = {argument: {"type": "string", "description": _ARGUMENT_HELP[kind]}}
    return function_schema(name, _DEFAULT_DESCRIPTION[kind], properties, [argument])


def name_problem(name: str, call_format: str | None = None) -> str | None:
    """Why `name` cannot be a tool name in `call_format` (None: in any format we support), or None."""
    formats = CALL_FORMATS if call_format is None else (call_format,)
    if "tags" in formats:
        if not _TAG_NAME.fullmatch(name):
            return (
                "Use letters, digits and underscores, starting with a letter or underscore (at most 64): "
                "in the tags call format the name is the tool's tag, <name>…</name>."
            )
        if name.lower() in RESERVED_TAGS:
            return f"{name!r} is a tag the call format already uses; choose another name."
    if "hermes" in formats and not _HERMES_NAME.fullmatch(name):
        return "Use letters, digits, underscores and hyphens (at most 64): the name goes into a JSON tool call."
    return None


def schema_errors(schema: Any, *, name: str, kind: str, primary_argument: str | None = None) -> list[str]:
    """Problems of an OpenAI function-tool schema, each prefixed with where it is ("function.parameters…")."""
    if not isinstance(schema, Mapping):
        return ['Must be a JSON object {"type": "function", "function": {…}}.']
    errors: list[str] = []
    if schema.get("type") != "function":
        errors.append('type: must be "function".')
    function = schema.get("function")
    if not isinstance(function, Mapping):
        return [*errors, "function: must be an object with name, description and parameters."]
    if function.get("name") != name:
        errors.append(f"function.name: is {function.get('name')!r}, but the tool is named {name!r}.")
    if not isinstance(function.get("description", ""), str):
        errors.append("function.description: must be a string.")
    parameters = function.get("parameters")
    if not isinstance(parameters, Mapping):
        return [*errors, 'function.parameters: must be a JSON schema object with "type": "object".']
    meta = Draft202012Validator(Draft202012Validator.META_SCHEMA)
    for error in sorted(meta.iter_errors(dict(parameters)), key=lambda e: list(e.absolute_path)):
        where = ".".join(["function.parameters", *(str(p) for p in error.absolute_path)])
        errors.append(f"{where}: {error.message}")
    if errors:
        return errors
    try:
        check_schema(schema, name=name, primary_argument=primary_argument or PRIMARY_ARGUMENT[kind])
    except ConfigError as exc:
        errors.append(str(exc).split(": schema", 1)[-1].lstrip(": ").strip() + ".")
    return errors


def arguments_errors(arguments: Any, schema: Mapping[str, Any]) -> list[str]:
    """Problems of a call's arguments against the tool's parameters schema (for "try it")."""
    if not isinstance(arguments, Mapping):
        return ["Arguments must be a JSON object."]
    parameters = schema.get("function", {}).get("parameters", {})
    error = best_match(Draft202012Validator(parameters).iter_errors(dict(arguments)))
    if error is None:
        return []
    where = ".".join(str(p) for p in error.absolute_path)
    return [f"{where}: {error.message}" if where else error.message]
