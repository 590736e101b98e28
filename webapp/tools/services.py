"""Writes of tools and trials. Every check happens before anything is stored; errors name the field.

`tool_trial_execute` is the worker's half of "try it": it builds the engine tool (with the decrypted
secret headers, in the worker's memory only) and runs it once.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from arpo_engine.config import ConfigError
from arpo_engine.tools.http import HttpTool
from arpo_engine.tools.sandbox_report import SandboxLimits
from webapp.core.errors import DomainError, NotFound
from webapp.core.ownership import Owner, get_visible, owner_for

from . import validation
from .crypto import encrypt_headers
from .models import Tool, ToolTrial

log = logging.getLogger(__name__)

MAX_SECRET_HEADERS = 20
MAX_TRIAL_OUTPUT_CHARS = 100_000
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}")
_FORBIDDEN_HEADERS = frozenset({"host", "content-length", "content-type", "transfer-encoding", "connection"})
_HOST = re.compile(r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
_FIELDS = ("description", "timeout_s", "memory_mb", "max_output_bytes", "top_k", "url", "allowed_hosts")


@transaction.atomic
def tool_create(
    *, user: Any, team: Any = None, name: str, kind: str, schema: Any = None,
    secret_headers: Mapping[str, str] | None = None, corpus: Any = None, **fields: Any,
) -> Tool:  # fmt: skip
    """Define a tool. `fields`: description, timeout_s, memory_mb, max_output_bytes, top_k, url, allowed_hosts."""
    owner = owner_for(user, team)
    tool = Tool(**owner.fields(), created_by=user, kind=kind)
    _apply(tool, user=user, owner=owner, name=name, schema=schema, corpus=corpus, fields=fields)
    if secret_headers:
        _set_secrets(tool, secret_headers)
    tool.save()
    return tool


@transaction.atomic
def tool_update(
    *, user: Any, tool: Tool, name: str | None = None, schema: Any = None,
    secret_headers: Mapping[str, str] | None = None, corpus: Any = ..., **fields: Any,
) -> Tool:  # fmt: skip
    """Change a tool; the kind and owner stay. `secret_headers`: None keeps them, {} removes them."""
    tool = Tool.objects.select_for_update().get(pk=tool.pk)
    _apply(
        tool, user=user, owner=tool.owner, name=name if name is not None else tool.name,
        schema=schema if schema is not None else tool.schema,
        corpus=tool.corpus_id if corpus is ... else corpus, fields={**_current(tool), **fields},
    )  # fmt: skip
    if secret_headers is not None:
        _set_secrets(tool, secret_headers)
    tool.save()
    return tool


@transaction.atomic
def tool_delete(*, user: Any, tool: Tool) -> None:
    tool.delete()


@transaction.atomic
def tool_trial_create(*, user: Any, tool: Tool, arguments: Any) -> ToolTrial:
    """Queue one call of the tool on the worker ("try it"); the arguments are checked against the schema."""
    problems = validation.arguments_errors(arguments, tool.schema)
    if problems:
        raise DomainError(f"arguments: {problems[0]}", fields={"arguments": problems})
    trial = ToolTrial.objects.create(tool=tool, arguments=dict(arguments), created_by=user)
    from worker.tasks import tool_try

    transaction.on_commit(lambda: tool_try.delay(trial.pk))
    return trial


def tool_trial_execute(*, trial_id: int) -> ToolTrial:
    """Worker side of "try it": run the tool once and store output, error and latency. Never raises for
    a tool problem; a redelivered message for a finished trial does nothing."""
    from arpo_engine.tools.registry import build_tool

    from .selectors import tool_config, tool_secret_headers

    with transaction.atomic():
        rows = ToolTrial.objects.select_for_update(of=("self",)).select_related("tool", "tool__corpus")
        trial = rows.get(pk=trial_id)
        if trial.finished:
            return trial
        trial.status = ToolTrial.Status.RUNNING
        trial.save(update_fields=["status"])
    started = time.perf_counter()
    try:
        secrets = tool_secret_headers(tool_id=trial.tool_id)
        engine_tool = build_tool(tool_config(trial.tool), secrets=secrets or None)
        result = engine_tool.run(trial.arguments)
    except (ConfigError, DomainError, RuntimeError, OSError) as exc:
        # Build errors never contain header values: the engine names options, not their contents.
        message = exc.message if isinstance(exc, DomainError) else str(exc)
        trial.status, trial.error = ToolTrial.Status.FAILED, f"The tool could not be started: {message}"
        trial.latency_ms = (time.perf_counter() - started) * 1000
    except Exception:
        log.exception("tool trial %s failed", trial.pk)  # tools never raise; this is our bug, not the user's
        trial.status, trial.error = ToolTrial.Status.FAILED, "Something went wrong on our side; the error was logged."
    else:
        trial.status = ToolTrial.Status.DONE
        trial.output = result.output[:MAX_TRIAL_OUTPUT_CHARS]
        trial.error = result.error or ""
        trial.latency_ms = result.latency_ms
    trial.finished_at = timezone.now()
    trial.save(update_fields=["status", "output", "error", "latency_ms", "finished_at"])
    return trial


# --- checks ------------------------------------------------------------------------------------


def _current(tool: Tool) -> dict[str, Any]:
    return {key: getattr(tool, key) for key in _FIELDS}


def _apply(
    tool: Tool, *, user: Any, owner: Owner, name: str, schema: Any, corpus: Any, fields: Mapping[str, Any]
) -> None:
    unknown = sorted(set(fields) - set(_FIELDS))
    if unknown:
        raise DomainError(f"Unknown field {unknown[0]!r}.", fields={unknown[0]: ["Unknown field."]})
    errors: dict[str, list[str]] = {}
    if tool.kind not in Tool.Kind.values:
        raise DomainError(f"kind: choose one of {', '.join(Tool.Kind.values)}.", fields={"kind": ["Unknown kind."]})
    name = (name or "").strip()
    # A name must suit at least one call format (runs check theirs); reserved tags are refused in any.
    unusable = all(validation.name_problem(name, f) for f in validation.CALL_FORMATS)
    if unusable or name.lower() in validation.RESERVED_TAGS:
        errors["name"] = [validation.name_problem(name, "tags") or "Invalid name."]
    elif Tool.objects.filter(owner.scope_q(), name=name).exclude(pk=tool.pk).exists():
        errors["name"] = [f"There is already a tool named {name!r}."]
    tool.name = name
    for key, value in fields.items():
        setattr(tool, key, value if value is not None or key not in ("description", "url") else "")
    tool.description = (tool.description or "").strip()
    if tool.kind != Tool.Kind.HTTP:
        tool.url, tool.allowed_hosts = "", []
    if tool.kind != Tool.Kind.SEARCH:
        tool.top_k, corpus = None, None
    errors.update(_limit_errors(tool))
    tool.corpus = _corpus(user, corpus, errors) if tool.kind == Tool.Kind.SEARCH else None
    primary = None
    if tool.kind == Tool.Kind.HTTP:
        primary = _http_errors(tool, schema, errors)
    tool.schema = validation.default_schema(tool.kind, name) if schema in (None, "", {}) else schema
    if isinstance(tool.schema, dict) and isinstance(tool.schema.get("function"), dict):
        tool.schema["function"].setdefault("name", name)
    if "name" not in errors:
        problems = validation.schema_errors(tool.schema, name=name, kind=tool.kind, primary_argument=primary)
        if problems:
            errors["schema"] = problems
    if errors:
        field, messages = next(iter(errors.items()))
        raise DomainError(f"{field}: {messages[0]}", fields=errors)


def _limit_errors(tool: Tool) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for key in ("timeout_s", "memory_mb", "max_output_bytes", "top_k"):
        value = getattr(tool, key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            errors[key] = ["Must be a positive number."]
    if tool.kind == Tool.Kind.PYTHON and not errors:
        try:
            SandboxLimits(**{k: v for k, v in _current(tool).items() if k in ("timeout_s", "memory_mb") and v})
        except ValueError as exc:
            errors["timeout_s"] = [str(exc)]
    if tool.kind in (Tool.Kind.CALCULATOR, Tool.Kind.SEARCH):
        tool.timeout_s = tool.memory_mb = tool.max_output_bytes = None
    if tool.kind == Tool.Kind.HTTP:
        tool.memory_mb = None
    return errors


def _corpus(user: Any, corpus: Any, errors: dict[str, list[str]]) -> Any:
    from webapp.datasets.models import Dataset

    if corpus in (None, ""):
        errors["corpus"] = ["A search tool needs a corpus: upload one under Datasets (kind: search corpus)."]
        return None
    corpus_id = corpus.pk if isinstance(corpus, Dataset) else corpus
    try:
        return get_visible(Dataset.objects.filter(kind=Dataset.Kind.CORPUS), user, pk=corpus_id)
    except NotFound:
        errors["corpus"] = ["No such search corpus."]
        return None


def _http_errors(tool: Tool, schema: Any, errors: dict[str, list[str]]) -> str | None:
    hosts = tool.allowed_hosts
    if isinstance(hosts, str):
        hosts = [h for h in re.split(r"[\s,]+", hosts) if h]
    if not isinstance(hosts, list) or not all(isinstance(h, str) and _HOST.fullmatch(h.lower()) for h in hosts):
        errors["allowed_hosts"] = ["List host names, e.g. api.example.com (no scheme, port or path)."]
        return None
    tool.allowed_hosts = [h.lower() for h in hosts]
    if not tool.url:
        errors["url"] = ["An http tool needs the URL its arguments are POSTed to."]
        return None
    try:
        engine_tool = HttpTool(
            tool.name or "http", url=tool.url, allowed_hosts=tool.allowed_hosts,
            schema=schema if isinstance(schema, Mapping) and schema else None,
        )  # fmt: skip
    except ValueError as exc:
        field = "allowed_hosts" if "allowed_hosts" in str(exc) else "url"
        errors[field] = [str(exc).replace("http tool ", "").capitalize() + "."]
        return None
    if not tool.allowed_hosts:
        tool.allowed_hosts = sorted(engine_tool.allowed_hosts)
    return engine_tool.primary_argument


def _secret_error(message: str) -> DomainError:
    return DomainError(f"secret_headers: {message}", fields={"secret_headers": [message]})


def _set_secrets(tool: Tool, headers: Mapping[str, str]) -> None:
    if not isinstance(headers, Mapping) or len(headers) > MAX_SECRET_HEADERS:
        raise _secret_error(f"Give at most {MAX_SECRET_HEADERS} headers as an object of name: value.")
    if headers and tool.kind != Tool.Kind.HTTP:
        raise _secret_error("Only http tools take secret headers.")
    for key, value in headers.items():
        # Messages name the header, never its value.
        if not isinstance(key, str) or not _HEADER_NAME.fullmatch(key) or key.lower() in _FORBIDDEN_HEADERS:
            raise _secret_error(f"{str(key)[:100]!r} cannot be a header name.")
        if not isinstance(value, str) or not value or len(value) > 8192 or any(c in value for c in "\r\n\0"):
            raise _secret_error(f"The value of {key!r} must be one line of text.")
    tool.secret_headers_encrypted = encrypt_headers(dict(headers))
    tool.secret_header_names = sorted(headers)
