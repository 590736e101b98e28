"""A rollout tree as a compact, size-capped JSON record for the dashboard (no token ids, no masks).

The engine's `RolloutGroup` keeps every token; the live view needs the lineage, the text of each
segment, the tool calls, the branch decisions and per-token entropies for tinting. Over the size cap
a record is thinned in order: entropies go, then long texts are clipped, then the last paths go.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

TEXT_CLIP = 400
OUTPUT_CLIP = 600


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _path(path: Any, reward: Any, *, clip: int | None) -> dict[str, Any]:
    def text(value: str, limit: int) -> str:
        return _clip(value, min(limit, clip)) if clip else value

    return {
        "id": path.id,
        "origin": path.origin,
        "parent": path.parent,
        "fork_boundary": path.fork_boundary,
        "fork_tool_index": path.fork_tool_index,
        "h_initial": path.h_initial,
        "finish_reason": path.finish_reason,
        "tokens": len(path.token_ids),
        "model_tokens": int(sum(path.mask)),
        "reward": float(reward.score) if reward is not None else None,
        "correct": bool(reward.details.get("correct")) if reward is not None else None,
        "format_ok": bool(reward.details.get("format_ok")) if reward is not None else None,
        "segments": [
            {"kind": s.kind, "start": s.start, "end": s.end, "text": text(s.text, 10**9)} for s in path.segments
        ],
        "tool_calls": [
            {
                "index": c.index,
                "name": c.name,
                "arguments": dict(c.arguments),
                "output": _clip(c.output, OUTPUT_CLIP),
                "error": c.error,
                "latency_ms": round(float(c.latency_ms), 1),
                "result_start": c.result_start,
                "result_end": c.result_end,
            }
            for c in path.tool_calls
        ],
        "decisions": [asdict(d) for d in path.decisions],
        "entropies": [None if h is None else round(float(h), 3) for h in path.entropies],
    }


def _size(record: dict[str, Any]) -> int:
    return len(json.dumps(record, default=str))


def tree_record(group: Any, rewards: Sequence[Any], *, max_bytes: int = 64 * 1024) -> dict[str, Any]:
    """The group (one prompt's tree) with each path's reward; at most `max_bytes` as JSON (about)."""
    sample = group.sample
    messages = sample.get("messages") or []
    question = str(messages[-1].get("content", "")) if messages else str(sample.get("question", ""))
    scores = [float(r.score) for r in rewards]
    record: dict[str, Any] = {
        "prompt_index": group.prompt_index,
        "question": _clip(question, 2000),
        "answers": [str(a) for a in (sample.get("answers") or [])][:10],
        "initial_samples": group.initial_samples,
        "budget": group.budget,
        "supplements": group.supplements,
        "entropy_estimator": group.entropy_estimator,
        "reward_mean": sum(scores) / len(scores) if scores else 0.0,
        "truncated": False,
    }
    rewards = list(rewards) + [None] * (len(group.paths) - len(rewards))
    paths = [_path(p, r, clip=None) for p, r in zip(group.paths, rewards, strict=False)]
    record["paths"] = paths
    if _size(record) <= max_bytes:
        return record
    record["truncated"] = True
    for p in paths:
        p["entropies"] = []
    if _size(record) <= max_bytes:
        return record
    record["paths"] = paths = [_path(p, r, clip=TEXT_CLIP) for p, r in zip(group.paths, rewards, strict=False)]
    for p in paths:
        p["entropies"] = []
    while len(paths) > 1 and _size(record) > max_bytes:
        paths.pop()
    return record
