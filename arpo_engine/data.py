"""Dataset loading: JSONL, CSV and verl/ARPO parquet rows into one internal `Sample` (PRODUCT.md, Formats).

Accepted rows:
- flat (JSONL/CSV): `{"prompt" | "question" | "messages": …, "answer" | "ground_truth": str | [str],
  "data_source"?, "tools"?, …extra}`;
- verl/ARPO (parquet, or the same nesting in JSONL): `{data_source, prompt: [{role, content}], ability,
  reward_model: {style, ground_truth}, extra_info: {…}}`.

Every row is validated and every problem is reported as `line N: message` in a single `DataError`;
no row is ever dropped silently. The official ARPO parquet files store `\\boxed` with a literal backspace
(a Python "\\b" escape gone wrong); it is repaired on import. SFT demonstrations (full `messages`
trajectories, optionally with `spans` marking inline tool results) load through `load_sft_demos`.

`scan_samples` / `scan_sft_demos` / `scan_corpus` are the streaming form the web upload uses: rows come
out one at a time, problems go into a `ScanReport` (the first `Limits.max_errors` kept, the rest
counted), and `Limits` caps rows and row length. The file readers are in `arpo_engine.data_files`.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from arpo_engine.data_files import MAX_LISTED_ERRORS as MAX_LISTED_ERRORS

# The file readers live in data_files; the names callers use stay importable from here.
from arpo_engine.data_files import NO_LIMITS, Header, RowError, check_header, read_rows
from arpo_engine.data_files import DataError as DataError
from arpo_engine.data_files import Limits as Limits

PROMPT_KEYS = ("prompt", "question", "messages")
ANSWER_KEYS = ("answer", "ground_truth")
PROMPT_ROLES = frozenset({"system", "user", "assistant"})
SFT_ROLES = frozenset({"system", "user", "assistant", "tool"})


@dataclass(frozen=True)
class Sample:
    index: int
    """0-based position among the file's rows."""
    messages: list[dict[str, str]]
    """The prompt as chat messages ({role, content}); ends with a user turn."""
    answers: tuple[str, ...]
    """Ground truths; a scorer takes the best match over them."""
    data_source: str
    """Dataset name, used to group metrics and pick a scorer (verl's `data_source`)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Every other column of the row (tools, ability, extra_info …), kept as read."""


@dataclass(frozen=True)
class SftDemo:
    index: int
    """0-based position among the file's rows."""
    messages: list[dict[str, Any]]
    """The whole trajectory: system/user/assistant/tool turns."""
    spans: tuple[tuple[int, int], ...] = ()
    """Character ranges [start, end) of the last (assistant) message that are inline tool results (mask 0)."""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScanReport:
    """What a scan found: rows read, the first problems as `line N: message`, and how many in all."""

    rows: int = 0
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    max_errors: int | None = None

    def add(self, message: str) -> None:
        self.error_count += 1
        if self.max_errors is None or len(self.errors) < self.max_errors:
            self.errors.append(message)

    def raise_if_failed(self, path: str | Path) -> None:
        if self.error_count:
            raise DataError(path, self.errors, total=self.error_count)
        if self.rows == 0:
            raise DataError(path, ["the file has no rows"])


def repair_backspace(text: str) -> str:
    r"""Turn the literal backspace of a mis-escaped "\boxed" (or "\begin", "\binom" …) back into "\b".

    A backspace character has no place in a prompt or an answer, so every one is such a casualty.
    """
    return text.replace("\x08", "\\b")


def _scan(
    path: str | Path,
    build: Callable[[int, Mapping[str, Any]], Any],
    report: ScanReport,
    limits: Limits,
    required: Sequence[tuple[str, ...]] = (),
) -> Iterator[tuple[int, Any]]:
    """Yield (line, item) for every good row; record every bad one in `report`. DataError if unreadable."""
    p = Path(path)
    if report.max_errors is None:
        report.max_errors = limits.max_errors
    built = 0
    for number, row in read_rows(p, limits):
        if isinstance(row, Header):
            check_header(p, row.columns, required)
            continue
        if row is None:
            continue
        report.rows += 1
        if limits.max_rows is not None and report.rows > limits.max_rows:
            report.rows -= 1
            report.add(f"line {number}: the file has more than {limits.max_rows} rows, the most accepted")
            return
        try:
            if isinstance(row, RowError):
                raise row
            if not isinstance(row, Mapping):
                raise RowError(f"expected an object, got {_type_name(row)}")
            item = build(built, row)
        except RowError as exc:
            report.add(f"line {number}: {exc}")
            continue
        built += 1
        yield number, item


def _load(
    path: str | Path, build: Callable[[int, Mapping[str, Any]], Any], required: Sequence[tuple[str, ...]] = ()
) -> list[Any]:
    report = ScanReport()
    items = [item for _, item in _scan(path, build, report, NO_LIMITS, required)]
    report.raise_if_failed(path)
    return items


# --- RL prompts ----------------------------------------------------------------------------------


def load_samples(path: str | Path) -> list[Sample]:
    """Read a JSONL, CSV or parquet file of prompts with ground truths; raise `DataError` on any bad row."""
    default_source = Path(path).stem
    return _load(path, lambda index, row: _sample(index, row, default_source), _SAMPLE_COLUMNS)


def scan_samples(
    path: str | Path, report: ScanReport, limits: Limits = NO_LIMITS, *, default_source: str | None = None
) -> Iterator[tuple[int, Sample]]:
    """Stream the prompts of a file as (line, Sample); bad rows go into `report`, DataError if unreadable."""
    source = default_source or Path(path).stem
    return _scan(path, lambda index, row: _sample(index, row, source), report, limits, _SAMPLE_COLUMNS)


def sample_row(sample: Sample) -> dict[str, Any]:
    """The normalized row of a sample: written as JSONL, it loads back as the same Sample."""
    return {
        **sample.extra,
        "prompt": sample.messages,
        "answer": list(sample.answers),
        "data_source": sample.data_source,
    }


_SAMPLE_COLUMNS = (PROMPT_KEYS, (*ANSWER_KEYS, "reward_model"))


def _sample(index: int, row: Mapping[str, Any], default_source: str) -> Sample:
    prompt_key = next((k for k in PROMPT_KEYS if k in row), None)
    if prompt_key is None:
        raise RowError('missing prompt ("prompt", "question" or "messages")')
    messages = _prompt_messages(prompt_key, row[prompt_key])
    answers, consumed = _answers(row)
    source = row.get("data_source", default_source)
    if not isinstance(source, str) or not source.strip():
        raise RowError(f'"data_source" must be a non-empty string, got {_type_name(source)}')
    tools = row.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, (str, Mapping)) for t in tools)):
        raise RowError('"tools" must be a list of tool names or tool schemas')
    extra = {k: v for k, v in row.items() if k not in {prompt_key, "data_source", *consumed}}
    style = row.get("reward_model", {}).get("style") if "reward_model" in consumed else None
    if style is not None:
        extra["reward_style"] = style
    return Sample(index=index, messages=messages, answers=answers, data_source=source, extra=extra)


def _prompt_messages(key: str, value: Any) -> list[dict[str, str]]:
    if isinstance(value, str):
        if not value.strip():
            raise RowError(f'"{key}" is empty')
        return [{"role": "user", "content": repair_backspace(value)}]
    if not isinstance(value, list):
        raise RowError(f'"{key}" must be a string or a list of messages, got {_type_name(value)}')
    messages = _messages(key, value, PROMPT_ROLES)
    if messages[-1]["role"] != "user":
        raise RowError(f'"{key}" must end with a user message, not {messages[-1]["role"]!r}')
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _messages(key: str, value: list[Any], roles: frozenset[str]) -> list[dict[str, Any]]:
    if not value:
        raise RowError(f'"{key}" is an empty list')
    out = []
    for i, message in enumerate(value):
        where = f'"{key}"[{i}]'
        if not isinstance(message, Mapping):
            raise RowError(f"{where} must be an object with role and content, got {_type_name(message)}")
        role, content = message.get("role"), message.get("content")
        if role not in roles:
            raise RowError(f"{where}: role {role!r} is not one of {', '.join(sorted(roles))}")
        if not isinstance(content, str):
            raise RowError(f"{where}: content must be a string, got {_type_name(content)}")
        if role != "tool" and not content.strip():
            raise RowError(f"{where}: content is empty")
        out.append({**message, "content": repair_backspace(content)})
    return out


def _answers(row: Mapping[str, Any]) -> tuple[tuple[str, ...], set[str]]:
    """The ground truths and the keys they were read from (so they stay out of `extra`)."""
    if "reward_model" in row:
        reward_model = row["reward_model"]
        if not isinstance(reward_model, Mapping):
            raise RowError(f'"reward_model" must be an object, got {_type_name(reward_model)}')
        if reward_model.get("ground_truth") is None:
            raise RowError('missing answer ("reward_model.ground_truth")')
        return _answer_values("reward_model.ground_truth", reward_model["ground_truth"]), {"reward_model"}
    key = next((k for k in ANSWER_KEYS if k in row), None)
    if key is None:
        raise RowError('missing answer ("answer" or "ground_truth")')
    return _answer_values(key, row[key]), {key}


def _answer_values(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, Mapping) and "target" in value:
        value = value["target"]  # Search-R1 style: {"target": [...]}
    values = value if isinstance(value, list) else [value]
    if not values:
        raise RowError(f'"{key}" is an empty list')
    answers = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise RowError(f'"{key}" must be a string or a list of strings, got {_type_name(v)}')
        text = repair_backspace(str(v)).strip()
        if not text:
            raise RowError(f'"{key}" is empty')
        answers.append(text)
    return tuple(answers)


# --- SFT demonstrations ---------------------------------------------------------------------------


def load_sft_demos(path: str | Path) -> list[SftDemo]:
    """Read full tool-use trajectories (`messages`, optional `spans`); raise `DataError` on any bad row."""
    return _load(path, _sft_demo, _SFT_COLUMNS)


def scan_sft_demos(path: str | Path, report: ScanReport, limits: Limits = NO_LIMITS) -> Iterator[tuple[int, SftDemo]]:
    """Stream SFT demonstrations as (line, SftDemo); bad rows go into `report`."""
    return _scan(path, _sft_demo, report, limits, _SFT_COLUMNS)


def sft_row(demo: SftDemo) -> dict[str, Any]:
    """The normalized row of a demonstration: written as JSONL, it loads back as the same SftDemo."""
    return {**demo.extra, "messages": demo.messages, "spans": [list(span) for span in demo.spans]}


_SFT_COLUMNS = (("messages",),)


def _sft_demo(index: int, row: Mapping[str, Any]) -> SftDemo:
    value = row.get("messages")
    if value is None:
        raise RowError('missing "messages"')
    if not isinstance(value, list):
        raise RowError(f'"messages" must be a list of messages, got {_type_name(value)}')
    messages = _messages("messages", value, SFT_ROLES)
    roles = [m["role"] for m in messages]
    if "user" not in roles:
        raise RowError('"messages" has no user message')
    if roles[-1] != "assistant":
        raise RowError(f'"messages" must end with an assistant message, not {roles[-1]!r}')
    spans = _spans(row.get("spans", []), messages[-1]["content"])
    extra = {k: v for k, v in row.items() if k not in ("messages", "spans")}
    return SftDemo(index=index, messages=messages, spans=spans, extra=extra)


def _spans(value: Any, content: str) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, list):
        raise RowError(f'"spans" must be a list of [start, end] pairs, got {_type_name(value)}')
    spans: list[tuple[int, int]] = []
    for i, span in enumerate(value):
        ok = (
            isinstance(span, list)
            and len(span) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) for x in span)
        )
        if not ok:
            raise RowError(f'"spans"[{i}] must be a [start, end] pair of integers')
        start, end = span
        last_end = spans[-1][1] if spans else 0
        if not last_end <= start < end <= len(content):
            raise RowError(
                f'"spans"[{i}] = [{start}, {end}] must be increasing, non-overlapping and within the '
                f"last message ({len(content)} characters)"
            )
        spans.append((start, end))
    return tuple(spans)


# --- search corpus documents ------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusDoc:
    index: int
    id: str
    title: str
    text: str


def scan_corpus(path: str | Path, report: ScanReport, limits: Limits = NO_LIMITS) -> Iterator[tuple[int, CorpusDoc]]:
    """Stream search-corpus documents `{"text", "title"?, "id"?}` (the rows `tools.search.load_corpus` reads)."""
    return _scan(path, _corpus_doc, report, limits, (("text",),))


def _corpus_doc(index: int, row: Mapping[str, Any]) -> CorpusDoc:
    text = row.get("text")
    if not isinstance(text, str) or not text.strip():
        raise RowError('"text" must be a non-empty string')
    title = row.get("title", "")
    if not isinstance(title, str):
        raise RowError(f'"title" must be a string, got {_type_name(title)}')
    doc_id = row.get("id", str(index))
    if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool):
        raise RowError(f'"id" must be a string or an integer, got {_type_name(doc_id)}')
    return CorpusDoc(index=index, id=str(doc_id), title=title.strip(), text=text)


# --- writing -----------------------------------------------------------------------------------


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> int:
    """Write rows as JSON lines, atomically (a reader never sees half a file); return the row count."""
    count = 0
    with atomic_writer(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


@contextmanager
def atomic_writer(path: str | Path) -> Iterator[TextIO]:
    """A text file that replaces `path` only once fully written; the parent folder is created."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    # A unique sibling opened with "x": same filesystem for os.replace, and the umask applies
    # (tempfile.mkstemp would leave the file readable by its owner only).
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("x", encoding="utf-8") as fh:
            yield fh
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__
