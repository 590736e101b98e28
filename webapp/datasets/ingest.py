"""From an uploaded file to validated, normalized files in a work folder — no database, no final paths.

Every step streams: the upload is spooled with a byte cap, gzip is inflated with a cap (a bomb stops
at the limit), and rows pass through `arpo_engine.data` (the engine's own parser) one at a time.
Any problem raises `UploadError` with a message a person can act on; the caller deletes the work
folder. File names given by users are display text only: files in the work folder have fixed names.

CSV cells that a spreadsheet would run as a formula (`=…`, `@…`, or `+`/`-` with a function call or
a `|`) are rejected, not rewritten: quietly prefixing them would change the prompt or the answer the
model is trained on. A plain signed number such as `-4` is data and passes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import random
import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from arpo_engine import data
from webapp.core.errors import DomainError

from .models import CORPUS_FILE, EVAL_FILE, SFT_FILE, TRAIN_FILE

MAX_LISTED_ERRORS = 50
_CHUNK = 1 << 20
_NAME_BAD = re.compile(r"[/\\\x00]")
_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


class UploadError(DomainError):
    """A file we will not store; `errors` lists the first problems by line, `error_count` counts them all."""

    def __init__(self, message: str, *, errors: list[str] | None = None, error_count: int = 0) -> None:
        fields = {"errors": errors} if errors else None
        super().__init__(message, code="invalid_file", fields=fields)
        self.errors = errors or []
        self.error_count = max(error_count, len(self.errors))


class Chunked(Protocol):
    """What Django's UploadedFile offers (and what tests can pass)."""

    name: str | None
    size: int | None

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]: ...


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_decompressed_bytes: int
    max_rows: int
    max_row_chars: int
    max_corpus_docs: int

    def engine(self, *, rows: int | None = None, csv: bool = False) -> data.Limits:
        return data.Limits(
            max_rows=rows or self.max_rows,
            max_row_chars=self.max_row_chars,
            max_errors=MAX_LISTED_ERRORS,
            reject_csv_formulas=csv,
        )


@dataclass(frozen=True)
class Spooled:
    path: Path
    """The plain (inflated) file, named `<role>.<ext>` in the work folder."""
    format: str
    display_name: str
    size_bytes: int
    """Bytes as uploaded (compressed, if it was)."""
    sha256: str


@dataclass
class Built:
    """What a build wrote into the work folder."""

    rows: int = 0
    train_rows: int = 0
    eval_rows: int = 0
    stats: dict[str, Any] = field(default_factory=dict)


# --- file names and spooling ----------------------------------------------------------------------


def display_name(raw: str | None) -> str:
    """The uploaded name as safe display text; UploadError when it holds a path or nothing usable."""
    name = (raw or "").strip()
    if _NAME_BAD.search(name):
        raise UploadError("The file name must be a plain name, without folders (no '/', '\\' or '..').")
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if ch.isprintable())
    if name.strip(". ") == "":
        raise UploadError("The file has no usable name; name it like data.jsonl, data.csv or data.parquet.")
    if len(name) > 120:
        stem, dot, ext = name.rpartition(".")
        name = f"{stem[: 110 - len(ext)]}….{ext}" if dot and len(ext) <= 10 else name[:120]
    return name


def spool(upload: Chunked, work: Path, role: str, *, limits: Limits) -> Spooled:
    """Copy the upload into `work/<role>.<ext>`, inflating gzip with a cap; sniff and check its type."""
    name = display_name(upload.name)
    cap = limits.max_bytes
    if upload.size is not None and upload.size > cap:
        raise UploadError(f"The file is {_mb(upload.size)}, over the {_mb(cap)} upload limit.")
    raw = work / f"{role}.upload"
    digest = hashlib.sha256()
    size = 0
    with raw.open("xb") as out:
        for chunk in upload.chunks(_CHUNK):
            size += len(chunk)
            if size > cap:
                raise UploadError(f"The file is over the {_mb(cap)} upload limit.")
            digest.update(chunk)
            out.write(chunk)
    if size == 0:
        raise UploadError(f"{name}: the file is empty.")
    with raw.open("rb") as fh:
        head = fh.read(8192)
    if head.startswith(b"PK\x03\x04") or name.lower().endswith(".zip"):
        raise UploadError(
            f"{name}: zip archives are not accepted; upload the .jsonl, .csv or .parquet file (or gzip it)."
        )
    inner_name = name
    if head[:2] == b"\x1f\x8b":
        inflated = work / f"{role}.inflated"
        _gunzip(raw, inflated, name=name, cap=limits.max_decompressed_bytes)
        raw.unlink()
        raw = inflated
        inner_name = name[:-3] if name.lower().endswith(".gz") else name
        with raw.open("rb") as fh:
            head = fh.read(8192)
        if not head:
            raise UploadError(f"{name}: the file is empty once decompressed.")
    fmt = _format_of(inner_name, head)
    path = raw.rename(work / f"{role}.{fmt}")
    return Spooled(path=path, format=fmt, display_name=name, size_bytes=size, sha256=digest.hexdigest())


def _gunzip(src: Path, dst: Path, *, name: str, cap: int) -> None:
    total = 0
    try:
        with gzip.open(src, "rb") as fh, dst.open("xb") as out:
            while chunk := fh.read(_CHUNK):
                total += len(chunk)
                if total > cap:
                    raise UploadError(
                        f"{name}: decompresses to more than {_mb(cap)}, the most accepted (a compression bomb?)."
                    )
                out.write(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise UploadError(f"{name}: not a valid gzip file ({exc}).") from None


def _format_of(name: str, head: bytes) -> str:
    if head.startswith(b"PAR1"):
        return "parquet"
    ext = Path(name).suffix.lower()
    fmt = _FORMATS.get(ext)
    if fmt == "parquet":
        raise UploadError(f"{name}: not a parquet file (it does not start with the parquet signature).")
    if fmt is None:
        hint = " (a JSON file must hold one object per line and be named .jsonl)" if ext == ".json" else ""
        raise UploadError(f"{name}: unsupported file type {ext or '(none)'!r}; use .jsonl, .csv or .parquet{hint}.")
    if b"\x00" in head:
        raise UploadError(f"{name}: this is binary data, not a {fmt.upper()} text file.")
    return fmt


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB" if n >= 1024 * 1024 else f"{n} bytes"


# --- building the normalized files ------------------------------------------------------------------


def _fail(label: str, error: data.DataError | None, report: data.ScanReport | None = None) -> UploadError:
    errors = error.errors if error is not None else (report.errors if report else [])
    total = error.total if error is not None else (report.error_count if report else 0)
    errors = errors[:MAX_LISTED_ERRORS]
    noun = "problem" if total == 1 else "problems"
    first = errors[0] if errors else "unknown problem"
    more = f" (and {total - 1} more)" if total > 1 else ""
    message = f"{label}: {total} {noun}; {first}{more}"
    return UploadError(message, errors=errors, error_count=total)


def _write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    count = 0
    with path.open("x", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            count += 1
    return count


class _Lengths:
    """Streaming stats of row lengths (characters): min/max/mean and a power-of-two histogram."""

    def __init__(self) -> None:
        self.n = 0
        self.total = 0
        self.min = 0
        self.max = 0
        self.bins: Counter[int] = Counter()

    def add(self, length: int) -> None:
        self.min = length if self.n == 0 else min(self.min, length)
        self.max = max(self.max, length)
        self.n += 1
        self.total += length
        self.bins[max(0, math.ceil(math.log2(length + 1)) - 1)] += 1

    def as_dict(self) -> dict[str, Any]:
        bins = [{"lo": 0 if b == 0 else 2**b, "hi": 2 ** (b + 1) - 1, "count": c} for b, c in sorted(self.bins.items())]
        mean = round(self.total / self.n, 1) if self.n else 0
        return {"min": self.min, "max": self.max, "mean": mean, "histogram": bins}


def _scan_prompts(src: Spooled, label: str, limits: Limits, source: str) -> Iterator[data.Sample]:
    report = data.ScanReport()
    engine_limits = limits.engine(csv=src.format == "csv")
    try:
        for _, sample in data.scan_samples(src.path, report, engine_limits, default_source=source):
            if not report.error_count:
                yield sample
    except data.DataError as exc:
        raise _fail(label, exc) from None
    if report.error_count:
        raise _fail(label, None, report)
    if report.rows == 0:
        raise UploadError(f"{label}: the file has no rows.")


def build_prompts(
    main: Spooled, work: Path, *, limits: Limits, eval_file: Spooled | None, eval_percent: int | None, seed: int
) -> Built:
    """train.jsonl (+ eval.jsonl) of normalized prompt rows, every row checked by the engine's parser."""
    source = Path(main.display_name).stem.split(".")[0] or "dataset"
    lengths, sources, tools = _Lengths(), Counter[str](), Counter[str]()

    def rows(samples: Iterator[data.Sample]) -> Iterator[dict[str, Any]]:
        for sample in samples:
            lengths.add(sum(len(m["content"]) for m in sample.messages))
            if len(sources) < 50 or sample.data_source in sources:
                sources[sample.data_source] += 1
            for name in _tool_names(sample.extra.get("tools")):
                tools[name] += 1
            yield data.sample_row(sample)

    built = Built()
    everything = work / ("all.jsonl" if eval_percent else TRAIN_FILE)
    built.train_rows = _write_rows(everything, rows(_scan_prompts(main, main.display_name, limits, source)))
    if eval_file is not None:
        label = f"eval file {eval_file.display_name}"
        built.eval_rows = _write_rows(work / EVAL_FILE, rows(_scan_prompts(eval_file, label, limits, source)))
    elif eval_percent:
        built.train_rows, built.eval_rows = _carve(everything, work, built.train_rows, eval_percent, seed)
    built.rows = built.train_rows + built.eval_rows
    built.stats = {
        "prompt_chars": lengths.as_dict(),
        "data_sources": dict(sources.most_common(50)),
        "row_tools": dict(tools.most_common(50)),
    }
    return built


def _carve(everything: Path, work: Path, n: int, percent: int, seed: int) -> tuple[int, int]:
    """Split off `percent` % of the rows as eval, the same rows for the same seed; the rest is train."""
    k = round(n * percent / 100)
    if k < 1 or k >= n:
        raise UploadError(
            f"{percent} % of {n} rows leaves no eval rows or no training rows; give a separate eval file."
        )
    chosen = set(random.Random(seed).sample(range(n), k))
    with (
        everything.open(encoding="utf-8") as fh,
        (work / TRAIN_FILE).open("x", encoding="utf-8") as train,
        (work / EVAL_FILE).open("x", encoding="utf-8") as eval_,
    ):
        for i, line in enumerate(fh):
            (eval_ if i in chosen else train).write(line)
    everything.unlink()
    return n - k, k


def _tool_names(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    names = []
    for item in value:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict) and isinstance(item.get("function"), dict):
            names.append(str(item["function"].get("name", "")))
    return [n for n in names if n]


def build_sft(main: Spooled, work: Path, *, limits: Limits) -> Built:
    """sft.jsonl: whole trajectories checked by `load_sft_demos`' rules (roles, ends, tool-result spans)."""
    report = data.ScanReport()
    lengths, turns, tool_turns, spans = _Lengths(), 0, 0, 0

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal turns, tool_turns, spans
        for _, demo in data.scan_sft_demos(main.path, report, limits.engine(csv=main.format == "csv")):
            if report.error_count:
                continue
            lengths.add(sum(len(m["content"]) for m in demo.messages))
            turns += len(demo.messages)
            tool_turns += sum(1 for m in demo.messages if m["role"] == "tool" or m.get("tool_calls"))
            spans += len(demo.spans)
            yield data.sft_row(demo)

    try:
        count = _write_rows(work / SFT_FILE, rows())
    except data.DataError as exc:
        raise _fail(main.display_name, exc) from None
    if report.error_count:
        raise _fail(main.display_name, None, report)
    if count == 0:
        raise UploadError(f"{main.display_name}: the file has no rows.")
    stats = {"chars": lengths.as_dict(), "turns": turns, "tool_turns": tool_turns, "tool_result_spans": spans}
    return Built(rows=count, train_rows=count, stats=stats)


def build_corpus(main: Spooled, work: Path, *, limits: Limits) -> Built:
    """corpus.jsonl of `{id, title, text}` documents plus its BM25 index folder, built once here."""
    if main.format != "jsonl":
        raise UploadError(f'{main.display_name}: a search corpus is JSONL, one {{"text", "title"?, "id"?}} per line.')
    report = data.ScanReport()
    lengths = _Lengths()
    ids: set[str] = set()

    def rows() -> Iterator[dict[str, Any]]:
        for number, doc in data.scan_corpus(main.path, report, limits.engine(rows=limits.max_corpus_docs)):
            if doc.id in ids:
                report.add(f'line {number}: duplicate document id "{doc.id}"')
            ids.add(doc.id)
            if report.error_count:
                continue
            lengths.add(len(doc.text))
            yield {"id": doc.id, "title": doc.title, "text": doc.text}

    try:
        count = _write_rows(work / CORPUS_FILE, rows())
    except data.DataError as exc:
        raise _fail(main.display_name, exc) from None
    if report.error_count:
        raise _fail(main.display_name, None, report)
    if count == 0:
        raise UploadError(f"{main.display_name}: the file has no documents.")
    vocabulary = _index_corpus(work / CORPUS_FILE)
    return Built(rows=count, train_rows=count, stats={"chars": lengths.as_dict(), "vocabulary": vocabulary})


def _index_corpus(corpus: Path) -> int:
    """Build the engine's BM25 index over the corpus and save it beside it; the vocabulary size."""
    from arpo_engine.tools import search

    return search.save_index(corpus)
