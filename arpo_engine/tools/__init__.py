"""Tools the agent calls during rollouts (ARPO_SPEC.md §1): the protocol and `build_tools`.

Kinds: `python` (bubblewrap sandbox), `search` (BM25 over an uploaded corpus), `calculator`, `http`.
"""

from arpo_engine.tools.base import Tool, ToolCall, ToolResult
from arpo_engine.tools.registry import build_tools

__all__ = ["Tool", "ToolCall", "ToolResult", "build_tools"]
