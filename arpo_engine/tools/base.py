"""The tool protocol: an OpenAI function-tool schema plus `run(arguments) -> ToolResult` (ARPO_SPEC.md §1).

A tool never raises into the agent loop: timeouts, crashes and bad arguments come back as a
`ToolResult` whose `output` the model reads and whose `error` names what went wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: Mapping[str, Any]
    raw: str = ""
    """The call as the model wrote it, for display."""


@dataclass(frozen=True)
class ToolResult:
    output: str
    """What the model sees as the observation."""
    error: str | None = None
    """Short machine-readable reason when the call failed: timeout, memory, exit_code, bad_arguments …"""
    latency_ms: float = 0.0
    truncated: bool = False
    """True when the output was cut to the tool's size cap."""
    details: Mapping[str, Any] = field(default_factory=dict)
    """Extra facts for the dashboard (exit code, documents retrieved …); never shown to the model."""


@runtime_checkable
class Tool(Protocol):
    name: str

    def schema(self) -> dict[str, Any]:
        """OpenAI function-tool schema: {"type": "function", "function": {name, description, parameters}}."""
        ...

    @property
    def primary_argument(self) -> str:
        """The string argument that the body of a `<name>…</name>` tag fills in the `tags` call format."""
        ...

    def run(self, arguments: Mapping[str, Any]) -> ToolResult:
        """Execute one call. Must not raise: failures are returned as a ToolResult with `error` set."""
        ...


def function_schema(
    name: str, description: str, properties: Mapping[str, Any], required: list[str]
) -> dict[str, Any]:
    """Build an OpenAI function-tool schema."""
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": dict(properties), "required": required},
        },
    }
