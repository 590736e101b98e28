"""What happens to one path: a segment appended, a tool called, a result appended, a fork copied (§1-2).

These are the per-path steps of the agent loop, free of scheduling: `agent.py` decides when each runs.
Tool results are context with mask 0 and no entropy; the response budget counts them (ARPO_SPEC.md §5).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from arpo_engine.rollout.budget import PathKey
from arpo_engine.rollout.formats import CallFormat, ParsedCall
from arpo_engine.rollout.sampler import GenResult
from arpo_engine.rollout.types import Path, RolloutGroup, Segment, ToolEvent
from arpo_engine.tools.base import Tool, ToolResult


def absorb_segment(
    path: Path,
    res: GenResult,
    call_format: CallFormat,
    tools: Mapping[str, Tool],
    max_tool_calls: int,
    *,
    eos_token_id: int | None = None,
) -> ParsedCall | None:
    """Append a generated segment; return the tool call it ends with, if it should be executed.

    A call beyond `max_tool_calls` is not run: the path ends there with EOS, as the official code does
    (ARPO_SPEC.md §1). The EOS closes the trajectory like one the model wrote, but the policy did not
    sample it, so it is context with mask 0, not a trained token.
    """
    start = len(path.token_ids)
    path.token_ids.extend(res.token_ids)
    path.mask.extend([1] * len(res.token_ids))
    path.entropies.extend(res.entropies)
    path.segments.append(Segment("model", start, len(path.token_ids), res.text))
    if res.finish_reason == "eos":
        path.finish_reason = "eos"
        return None
    if res.finish_reason == "length" or not res.token_ids:
        path.finish_reason = "length"
        return None
    parsed = call_format.parse_call(res.text, tools)
    if parsed is None:  # a stop string that is not a well-formed call end
        path.finish_reason = "stop"
        return None
    if len(path.tool_calls) >= max_tool_calls:
        path.finish_reason = "call_limit"
        if eos_token_id is not None:
            path.token_ids.append(eos_token_id)
            path.mask.append(0)
            path.entropies.append(None)
            path.segments[-1].end = len(path.token_ids)
        return None
    return parsed


def call_tool(parsed: ParsedCall, tools: Mapping[str, Tool]) -> tuple[ToolResult, float]:
    """Run one call (in a worker thread); errors become observations, never exceptions."""
    started = time.perf_counter()
    call = parsed.call
    if parsed.error is not None:
        result = ToolResult(output=f"Error: {parsed.error}", error="bad_call")
    elif call.name not in tools:
        known = ", ".join(tools) or "none"
        result = ToolResult(output=f"Error: no tool named {call.name!r} (tools: {known})", error="unknown_tool")
    else:
        try:
            result = tools[call.name].run(call.arguments)
        except Exception as exc:  # a tool must not take the rollout down with it
            result = ToolResult(output=f"Error: the tool failed: {exc}", error="tool_crash")
    return result, (time.perf_counter() - started) * 1000.0


def append_result(
    path: Path,
    parsed: ParsedCall,
    result: ToolResult,
    latency_ms: float,
    *,
    budget_tokens: int,
    max_chars: int,
    call_format: CallFormat,
    tokenizer: Any,
) -> ToolEvent:
    """Append a tool result (mask 0); end the path with `length` when it fills the response budget."""
    output = result.output
    if len(output) > max_chars:
        output = output[:max_chars] + "\n[output truncated]"
    text = call_format.render_result(output)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    room = budget_tokens - len(path.token_ids)
    if len(ids) >= room:  # no room left for the model to read the result and go on
        ids = ids[: max(0, room)]
        text = tokenizer.decode(ids)
        path.finish_reason = "length"
    start = len(path.token_ids)
    path.token_ids.extend(ids)
    path.mask.extend([0] * len(ids))
    path.entropies.extend([None] * len(ids))
    path.segments.append(Segment("tool", start, len(path.token_ids), text))
    event = ToolEvent(
        index=len(path.tool_calls) + 1,
        name=parsed.call.name,
        arguments=dict(parsed.call.arguments),
        raw=parsed.call.raw,
        output=output,
        error=result.error,
        latency_ms=result.latency_ms or latency_ms,
        result_start=start,
        result_end=len(path.token_ids),
    )
    path.tool_calls.append(event)
    return event


def fork_path(src: Path, new_id: int, boundary: int, t: int) -> Path:
    """A new path sharing `src` up to the end of its tool result t; it inherits H_initial (§2 step 3).

    Copies only what lies before the boundary, so it does not matter how far `src` has run since.
    Decision records before t are shared objects, as they describe the shared prefix.
    """
    return Path(
        id=new_id,
        origin="fork",
        parent=src.id,
        fork_boundary=boundary,
        fork_tool_index=t,
        h_initial=src.h_initial,
        token_ids=src.token_ids[:boundary],
        mask=src.mask[:boundary],
        entropies=src.entropies[:boundary],
        segments=[s for s in src.segments if s.end <= boundary],
        tool_calls=src.tool_calls[:t],
        decisions=[d for d in src.decisions if d.tool_index < t],
    )


def renumber(group: RolloutGroup, keys: Sequence[PathKey]) -> None:
    """Reorder the group's paths and ids so they do not depend on the order paths were created in.

    `keys[i]` is the stable key of the path now at index i. The new order reads like a synchronous
    loop's: fresh samples of each phase first, then forks by tool index, by parent, by key.
    """
    paths = group.paths
    levels: dict[tuple[int, int], list[int]] = {}
    for i, path in enumerate(paths):
        levels.setdefault((keys[i][0], path.fork_tool_index or 0), []).append(i)
    new_id: dict[int, int] = {}
    for level in sorted(levels):  # a parent forks at a later tool than its own fork point: ids known
        members = levels[level]
        members.sort(key=lambda i: (-1 if paths[i].parent is None else new_id[paths[i].parent], keys[i]))  # type: ignore[index]
        for i in members:
            new_id[i] = len(new_id)
    seen: set[int] = set()
    for path in paths:
        for record in path.decisions:
            if id(record) not in seen:  # records are shared with forks: remap each once
                seen.add(id(record))
                record.children = sorted(new_id[c] for c in record.children)
    for i, path in enumerate(paths):
        path.id = new_id[i]
        path.parent = None if path.parent is None else new_id[path.parent]
    group.paths = sorted(paths, key=lambda p: p.id)
