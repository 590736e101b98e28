"""Plain-text drawing of a rollout tree: lineage, tool calls, entropies and branch decisions."""

from __future__ import annotations

from collections.abc import Mapping

from arpo_engine.rollout.types import Path, RolloutGroup


def _clip(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _header(path: Path) -> str:
    where = f"fork of {path.parent} after tool {path.fork_tool_index}" if path.origin == "fork" else path.origin
    h = f"H_init={path.h_initial:.3f}" if path.h_initial is not None else "H_init=-"
    return (
        f"path {path.id} [{where}] {h} · {len(path.token_ids)} tok "
        f"({path.num_model_tokens} model) · {len(path.tool_calls)} calls · end: {path.finish_reason}"
    )


def _events(path: Path, width: int) -> list[str]:
    start = path.fork_tool_index or 0
    decisions = {d.tool_index: d for d in path.decisions}
    lines = []
    for call in path.tool_calls[start:]:
        arg = _clip(next(iter(call.arguments.values()), "") if call.arguments else call.raw, 40)
        err = f" ERROR {call.error}" if call.error else ""
        line = f"t={call.index} {call.name}({arg!r}) {call.latency_ms:.0f} ms{err} -> {_clip(call.output, 50)!r}"
        d = decisions.get(call.index)
        if d is not None:
            draw = f" draw={d.draw:.2f}" if d.draw is not None else ""
            verdict = f"FORK -> {', '.join(map(str, d.children))}" if d.forked else "no fork"
            if d.forked and not d.children:
                verdict = "fork wanted, budget full"
            line += f"\n    H_t={d.h_t:.3f} dH={d.delta_h:+.3f} score={d.score:.2f}{draw} {verdict}"
        lines.append(line)
    tail = path.segments[-1].text if path.segments else ""
    lines.append(f"last: {_clip(tail, width)!r}")
    return lines


def format_group(group: RolloutGroup, *, width: int = 100, rewards: Mapping[int, float] | None = None) -> str:
    """The group as an indented tree, children under the path they forked from."""
    question = ""
    messages = group.sample.get("messages") or []
    if messages:
        question = str(messages[-1].get("content", ""))
    answers = group.sample.get("answers")
    out = [
        f"prompt {group.prompt_index}: {_clip(question, width)}"
        + (f"  (answer: {', '.join(answers)})" if answers else ""),
        f"  N={group.initial_samples} M={group.budget} paths={len(group.paths)} "
        f"supplements={group.supplements} entropy={group.entropy_estimator}",
    ]
    children: dict[int | None, list[Path]] = {}
    for p in group.paths:
        children.setdefault(p.parent, []).append(p)

    def walk(path: Path, depth: int) -> None:
        pad = "  " + "   " * depth
        reward = f" · reward {rewards[path.id]:+.2f}" if rewards and path.id in rewards else ""
        out.append(f"{pad}├─ {_header(path)}{reward}")
        for event in _events(path, width - len(pad)):
            out.extend(f"{pad}│  {line}" for line in event.splitlines())
        for child in children.get(path.id, []):
            walk(child, depth + 1)

    for root in children.get(None, []):
        walk(root, 0)
    return "\n".join(out)


def format_metrics(metrics: Mapping[str, float]) -> str:
    width = max(len(k) for k in metrics) if metrics else 0
    return "\n".join(f"  {k:<{width}}  {v:,.4g}" for k, v in metrics.items())
