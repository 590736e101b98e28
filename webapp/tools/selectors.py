"""Reads of tools and trials, always scoped to what the user may see (webapp.core.ownership).

`tool_configs_for` turns tools into the engine's `ToolConfig`s for a run or a dataset preview; the
http tools' secret headers are not in them. The worker alone asks for those, by tool id, with
`tool_secret_headers` / `tool_secrets_by_name`, right before it builds the engine tools.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from arpo_engine.config import ToolConfig
from webapp.core.errors import DomainError, NotFound
from webapp.core.ownership import get_visible, visible_to

from .crypto import decrypt_headers
from .models import Tool, ToolTrial


def tool_list(*, user: Any) -> QuerySet[Tool]:
    return visible_to(Tool, user).select_related("owner_user", "owner_team", "corpus")


def tool_get(*, user: Any, tool_id: Any) -> Tool:
    return get_visible(tool_list(user=user), user, pk=tool_id)


def tool_trial_get(*, user: Any, tool_id: Any, trial_id: Any) -> ToolTrial:
    tool = tool_get(user=user, tool_id=tool_id)
    try:
        return ToolTrial.objects.get(tool=tool, pk=trial_id)
    except (ToolTrial.DoesNotExist, ValueError, TypeError):
        raise NotFound("trial") from None


def tool_trials_recent(*, tool: Tool, limit: int = 10) -> list[ToolTrial]:
    return list(tool.trials.all()[:limit])


def tool_configs_for(*, user: Any, tool_ids: Sequence[Any]) -> list[ToolConfig]:
    """The engine configs of these tools, in the order given; NotFound if any is not visible to `user`."""
    tools = {t.pk: t for t in tool_list(user=user).filter(pk__in=[_as_id(i) for i in tool_ids])}
    configs = []
    for tool_id in tool_ids:
        tool = tools.get(_as_id(tool_id))
        if tool is None:
            raise NotFound("tool")
        configs.append(tool_config(tool))
    return configs


def tool_config(tool: Tool) -> ToolConfig:
    """One tool as the engine's ToolConfig (no secrets). DomainError when its corpus file is gone."""
    return ToolConfig(
        name=tool.name, kind=tool.kind, description=tool.description, schema=tool.schema,  # type: ignore[arg-type]
        options=_options(tool),
    )  # fmt: skip


def _options(tool: Tool) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if tool.kind == Tool.Kind.PYTHON:
        options = {"timeout_s": tool.timeout_s, "memory_mb": tool.memory_mb, "max_output_bytes": tool.max_output_bytes}
    elif tool.kind == Tool.Kind.SEARCH:
        corpus = tool.corpus.corpus_path() if tool.corpus is not None else None
        if corpus is None:
            raise DomainError(f"Tool {tool.name!r} has no corpus file; choose a search corpus.", code="no_corpus")
        options = {"corpus_path": str(corpus), "top_k": tool.top_k}
    elif tool.kind == Tool.Kind.HTTP:
        options = {
            "url": tool.url,
            "allowed_hosts": list(tool.allowed_hosts),
            "timeout_s": tool.timeout_s,
            "max_response_bytes": tool.max_output_bytes,
            "allow_private_networks": bool(getattr(settings, "ARPO_HTTP_TOOLS_ALLOW_PRIVATE", False)),
        }
    return {key: value for key, value in options.items() if value is not None}


def _as_id(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- worker side only: decrypted secrets never leave the worker's memory --------------------------


def tool_secret_headers(*, tool_id: int) -> dict[str, str]:
    """The decrypted secret headers of one tool (empty for none). Call only in the worker."""
    tool = Tool.objects.only("secret_headers_encrypted").get(pk=tool_id)
    return decrypt_headers(tool.secret_headers_encrypted)


def tool_secrets_by_name(*, tool_ids: Sequence[int]) -> dict[str, dict[str, str]]:
    """`build_tools(configs, secrets=...)`'s argument for these tools: name -> headers, only tools with some."""
    rows = Tool.objects.filter(pk__in=list(tool_ids)).exclude(secret_headers_encrypted="")
    return {tool.name: decrypt_headers(tool.secret_headers_encrypted) for tool in rows}
