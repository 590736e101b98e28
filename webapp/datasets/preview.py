"""The first rows of a dataset exactly as the model will see them, with token counts and a histogram.

Prompts go through `arpo_engine.rollout.agent.build_prompt_ids` — the call the engine makes — with
the chosen base model's chat template and the system prompt the chosen tools produce in the chosen
call format. SFT demonstrations render as the SFT stage encodes them (prompt turns without their
system message, then the final assistant turn with its tool-result spans marked). The tokenizer is
the web process's torch-free one (`webapp.runs.prompt_tokens`), cached per model folder; model
weights are never loaded here.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from arpo_engine import data
from arpo_engine.config import ToolConfig
from webapp.core.errors import DomainError

from .models import Dataset

TOKEN_SAMPLE_ROWS = 500
"""Rows whose token counts make the histogram (the first ones; the page says so)."""
HISTOGRAM_BINS = 12


@dataclass
class PreviewRow:
    line: int
    text: str
    tokens: int
    answers: list[str] = field(default_factory=list)
    masked: list[tuple[int, int]] = field(default_factory=list)
    """Character ranges of `text` that are tool results (not trained on), for SFT rows."""
    warnings: list[str] = field(default_factory=list)

    @property
    def segments(self) -> list[tuple[str, bool]]:
        """The text as (piece, is_tool_result) pieces, for highlighting what SFT does not train on."""
        out: list[tuple[str, bool]] = []
        cursor = 0
        for start, end in self.masked:
            out += [(self.text[cursor:start], False), (self.text[start:end], True)]
            cursor = end
        out.append((self.text[cursor:], False))
        return [(piece, masked) for piece, masked in out if piece]


@dataclass
class Preview:
    base_model: str
    call_format: str
    tools: list[str]
    system_prompt: str
    rows: list[PreviewRow]
    token_stats: dict[str, Any]
    histogram: list[dict[str, Any]]
    sampled_rows: int


class _Stub:
    """A tool stand-in for the system prompt when the real tool cannot be built in the web process."""

    def __init__(self, config: ToolConfig) -> None:
        from arpo_engine.tools.base import function_schema

        self.name = config.name
        self.primary_argument = "input"
        self._schema = (
            dict(config.schema)
            if config.schema
            else function_schema(
                config.name, config.description or f"The {config.kind} tool.", {"input": {"type": "string"}}, ["input"]
            )
        )

    def schema(self) -> dict[str, Any]:
        return self._schema


def system_prompt(tool_configs: Sequence[ToolConfig], call_format: str, instructions: str = "") -> str:
    """The system prompt the engine builds for these tools (`pipeline.system_prompt_for`)."""
    from arpo_engine.rollout.formats import get_format
    from arpo_engine.tools.registry import build_tool

    tools: dict[str, Any] = {}
    for config in tool_configs:
        try:
            tools[config.name] = build_tool(config)
        except Exception:  # e.g. no sandbox on the web host: the schema is all the prompt needs
            tools[config.name] = _Stub(config)
    try:
        fmt = get_format(call_format)
    except ValueError as exc:
        raise DomainError(str(exc), fields={"call_format": [str(exc)]}) from None
    return fmt.system_prompt(tools, instructions)


def dataset_preview(
    *, dataset: Dataset, tokenizer: Any, base_model: str, tool_configs: Sequence[ToolConfig], call_format: str = "tags",
    rows: int = 5,
) -> Preview:  # fmt: skip
    prompt = system_prompt(tool_configs, call_format) if dataset.kind != Dataset.Kind.CORPUS else ""
    names = {c.name for c in tool_configs}
    rendered = itertools.islice(_render(dataset, tokenizer, prompt, names), TOKEN_SAMPLE_ROWS)
    shown: list[PreviewRow] = []
    counts: list[int] = []
    for row in rendered:
        counts.append(row.tokens)
        if len(shown) < rows:
            shown.append(row)
    return Preview(
        base_model=base_model,
        call_format=call_format,
        tools=[c.name for c in tool_configs],
        system_prompt=prompt,
        rows=shown,
        token_stats=_stats(counts),
        histogram=histogram(counts),
        sampled_rows=len(counts),
    )


def _render(dataset: Dataset, tokenizer: Any, prompt: str, tool_names: set[str]) -> Iterator[PreviewRow]:
    from arpo_engine.rollout.agent import build_prompt_ids

    report = data.ScanReport()
    if dataset.kind == Dataset.Kind.PROMPTS:
        path = dataset.train_path()
        if path is None:
            raise _missing()
        for line, sample in data.scan_samples(path, report):
            ids, text = build_prompt_ids(tokenizer, sample.messages, prompt)
            unknown = [n for n in _row_tools(sample.extra.get("tools")) if n not in tool_names]
            warnings = [f"asks for tool {n!r}, which is not among the chosen tools" for n in unknown]
            yield PreviewRow(line=line, text=text, tokens=len(ids), answers=list(sample.answers), warnings=warnings)
    elif dataset.kind == Dataset.Kind.SFT:
        path = dataset.sft_path()
        if path is None:
            raise _missing()
        eos = getattr(tokenizer, "special_tokens", {}).get("eos_token", "")
        for line, demo in data.scan_sft_demos(path, report):
            turns = [m for m in demo.messages[:-1] if m.get("role") != "system"]
            ids, text = build_prompt_ids(tokenizer, turns, prompt)
            answer = str(demo.messages[-1]["content"])
            response_tokens = len(tokenizer(answer, add_special_tokens=False)["input_ids"]) + 1
            masked = [(len(text) + s, len(text) + e) for s, e in demo.spans]
            yield PreviewRow(line=line, text=text + answer + eos, tokens=len(ids) + response_tokens, masked=masked)
    else:
        path = dataset.corpus_path()
        if path is None:
            raise _missing()
        for line, doc in data.scan_corpus(path, report):
            text = f"{doc.title}: {doc.text}" if doc.title else doc.text
            yield PreviewRow(line=line, text=text, tokens=len(tokenizer(text, add_special_tokens=False)["input_ids"]))


def _missing() -> DomainError:
    return DomainError("The dataset's files are not in place yet; try again in a moment.", code="not_ready", status=409)


def _row_tools(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    names = [v if isinstance(v, str) else (v.get("function") or {}).get("name") for v in value if v]
    return [n for n in names if isinstance(n, str) and n]


def _stats(counts: Sequence[int]) -> dict[str, Any]:
    if not counts:
        return {"count": 0}
    ordered = sorted(counts)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return {"count": len(ordered), "min": ordered[0], "max": ordered[-1], "mean": round(sum(ordered) / len(ordered), 1),
            "p95": p95}  # fmt: skip


def histogram(counts: Sequence[int], bins: int = HISTOGRAM_BINS) -> list[dict[str, Any]]:
    """Equal-width bins over [min, max] with a whole-number width; each {lo, hi, count, share}."""
    if not counts:
        return []
    lo, hi = min(counts), max(counts)
    width = max(1, math.ceil((hi - lo + 1) / bins))
    n = math.ceil((hi - lo + 1) / width)
    tally = [0] * n
    for c in counts:
        tally[(c - lo) // width] += 1
    peak = max(tally)
    return [
        {"lo": lo + i * width, "hi": lo + (i + 1) * width - 1, "count": t, "share": round(t / peak, 4)}
        for i, t in enumerate(tally)
    ]


def histogram_svg_bars(
    bins: Sequence[Mapping[str, Any]], *, width: int = 480, height: int = 120
) -> list[dict[str, Any]]:
    """Rectangles for a server-rendered SVG histogram (x, y, w, h in viewBox units, plus a label)."""
    if not bins:
        return []
    step = width / len(bins)
    bars = []
    for i, b in enumerate(bins):
        h = max(1.0 if b["count"] else 0.0, b["share"] * (height - 4))
        bars.append({"x": round(i * step + 1, 2), "y": round(height - h, 2), "w": round(step - 2, 2), "h": round(h, 2),
                     "label": f"{b['lo']}–{b['hi']} tokens: {b['count']} rows"})  # fmt: skip
    return bars


def preview_tokenizer(slug: str | None) -> tuple[str, Any]:
    """(slug, tokenizer) of the chosen base model, or of the first one prepared on this machine."""
    from webapp.runs.prompt_tokens import tokenizer_for
    from webapp.runs.selectors import base_model_list

    models = list(base_model_list())
    if slug:
        chosen = next((m for m in models if m.slug == slug), None)
        if chosen is None:
            raise DomainError(f"No base model {slug!r}.", fields={"base_model": ["Choose one of the base models."]})
    else:
        chosen = next((m for m in models if m.local_folder() is not None), None)
        if chosen is None:
            raise DomainError("No base model is prepared on this server, so there is no tokenizer to preview with.",
                              code="no_base_model", status=409)  # fmt: skip
    folder = chosen.local_folder()
    if folder is None:
        message = f"{chosen.display_name} is not prepared on this server (no tokenizer folder); choose another."
        raise DomainError(message, fields={"base_model": [message]})
    try:
        return chosen.slug, tokenizer_for(folder)
    except (OSError, ValueError) as exc:
        raise DomainError(
            f"{chosen.display_name}: cannot load its tokenizer ({exc}).", fields={"base_model": [str(exc)]}
        ) from None
