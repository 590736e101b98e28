"""Reading dataset files row by row: JSONL, CSV and parquet, with limits for untrusted uploads.

The row rules (what a prompt, an answer, a demonstration is) live in `arpo_engine.data`; this module
only turns a file into `(line, row)` pairs, a `RowError` for a row that cannot even be decoded, and a
`DataError` for a file that cannot be read at all. Every reader streams, so a large file never sits
in memory whole, and `Limits` caps the length of a row before it is decoded.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_LISTED_ERRORS = 20
# CSV cells are strings; these columns carry structure, so a JSON-looking cell is decoded.
_CSV_JSON_COLUMNS = frozenset({"prompt", "messages", "tools", "reward_model", "extra_info", "spans"})


class DataError(ValueError):
    """A dataset file that cannot be used; `errors` holds every `line N: message` found."""

    def __init__(self, path: str | Path, errors: list[str], *, total: int | None = None) -> None:
        self.path = str(path)
        self.errors = list(errors)
        self.total = max(total or 0, len(self.errors))
        """How many problems were found; `errors` may list only the first of them."""
        listed = "\n".join(f"  {e}" for e in self.errors[:MAX_LISTED_ERRORS])
        more = self.total - min(len(self.errors), MAX_LISTED_ERRORS)
        tail = f"\n  … and {more} more" if more > 0 else ""
        noun = "problem" if self.total == 1 else "problems"
        super().__init__(f"{self.path}: {self.total} {noun}\n{listed}{tail}")


class RowError(ValueError):
    """One invalid row; collected with its line number, never raised out of this module."""


@dataclass(frozen=True)
class Limits:
    """Caps for untrusted files (the web upload); the engine's own loading uses none."""

    max_rows: int | None = None
    """Rows (blank JSONL lines excluded) before the file is refused."""
    max_row_chars: int | None = None
    """Characters in one row (a JSONL line, the cells of a CSV row, a parquet row as JSON)."""
    max_errors: int | None = None
    """Problems listed in the report; further ones are only counted."""
    reject_csv_formulas: bool = False
    """Refuse CSV cells a spreadsheet would run as a formula (`=…`, `@…`, `+`/`-` with a call or `|`)."""


# --- reading rows ------------------------------------------------------------------------------

Row = tuple[int, Any]
"""(1-based line number, decoded row or a RowError to report)."""

NO_LIMITS = Limits()
# A cell a spreadsheet would evaluate: "=…"/"@…", or "+…"/"-…" carrying a function call or a DDE pipe.
# A plain signed number or expression ("-4", "-3 + 5") is data, not a formula.
_FORMULA_CALL = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\s*\(|\|")


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _read_jsonl(path: Path, limits: Limits = NO_LIMITS) -> Iterator[Row]:
    cap = limits.max_row_chars
    with path.open("rb") as fh:
        number = 0
        while raw := fh.readline(4 * cap + 2 if cap else -1):  # UTF-8: at most 4 bytes a character
            number += 1
            if cap and len(raw) > cap and not raw.endswith(b"\n"):
                while (rest := fh.readline(1 << 20)) and not rest.endswith(b"\n"):
                    pass  # skip the rest of an overlong line without holding it
                yield number, RowError(f"the line is longer than {cap} characters")
                continue
            yield number, _decode_json_line(raw, first=number == 1, cap=cap)


def _decode_json_line(raw: bytes, *, first: bool, cap: int | None) -> Any:
    try:
        line = raw.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError as exc:
        return RowError(f"not UTF-8 text (byte {exc.start + 1} of the line); save the file as UTF-8")
    if "\x00" in line:
        return RowError("binary data (a NUL byte), not text")
    if not line.strip():
        return None  # blank lines (a trailing newline, say) are not rows
    if cap and len(line.rstrip("\r\n")) > cap:
        return RowError(f"the line is longer than {cap} characters")
    try:
        # Without its line ending, so an error at the end of the row reports the row's own column.
        return json.loads(line.rstrip("\r\n"), object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as exc:
        return RowError(f"duplicate key {exc.args[0]!r}")
    except json.JSONDecodeError as exc:
        return RowError(f"malformed JSON: {exc.msg} (column {exc.colno})")


def _check_utf8_lines(path: Path) -> None:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                problem = f"line {number}: not UTF-8 text (byte {exc.start + 1} of the line); save the file as UTF-8"
                raise DataError(path, [problem]) from None
            if "\x00" in text:
                raise DataError(path, [f"line {number}: binary data (a NUL byte), not text"])


def _read_csv(path: Path, limits: Limits = NO_LIMITS) -> Iterator[Row]:
    # Line numbers count data rows (the header is not line 1), as a spreadsheet's data rows would.
    _check_utf8_lines(path)  # so an encoding problem names its line, not a byte offset in a buffer
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:
            return
        yield 0, Header(list(reader.fieldnames))
        number = 0
        try:
            for number, raw in enumerate(reader, start=1):
                if None in raw:
                    yield number, RowError("more cells than the header has columns")
                    continue
                yield number, _csv_row(raw, limits)
        except csv.Error as exc:
            raise DataError(path, [f"line {number + 1}: {exc}"]) from None


def _csv_row(raw: Mapping[str, Any], limits: Limits) -> Any:
    cells = {k: v for k, v in raw.items() if v not in (None, "")}
    if limits.max_row_chars and sum(len(v) for v in cells.values()) > limits.max_row_chars:
        return RowError(f"the row is longer than {limits.max_row_chars} characters")
    if limits.reject_csv_formulas:
        for column, value in cells.items():
            if _looks_like_formula(value):
                return RowError(
                    f'column "{column}" starts with {value.lstrip()[0]!r} and would run as a spreadsheet '
                    "formula; remove the formula or start the cell with a space"
                )
    return {k: _decode_csv_cell(k, v) for k, v in cells.items()}


def _looks_like_formula(value: str) -> bool:
    head = value[:1]
    if head in ("=", "@", "\t", "\r"):
        return head in ("=", "@") or value.lstrip()[:1] in ("=", "@", "+", "-")
    return head in ("+", "-") and _FORMULA_CALL.search(value) is not None


def _decode_csv_cell(column: str, value: str) -> Any:
    if column not in _CSV_JSON_COLUMNS or value.lstrip()[:1] not in ("[", "{"):
        return value
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError:
        return value  # a prompt that merely starts with a bracket stays text
    return value if column == "prompt" and not isinstance(decoded, list) else decoded


def _read_parquet(path: Path, limits: Limits = NO_LIMITS) -> Iterator[Row]:
    import pyarrow.parquet as pq  # heavy; only parquet users pay for it

    parquet = pq.ParquetFile(path)
    yield 0, Header(list(parquet.schema_arrow.names))
    number = 0
    for batch in parquet.iter_batches(batch_size=1024):  # streamed: a large file never sits in memory whole
        for row in batch.to_pylist():
            number += 1
            cells = {k: v for k, v in row.items() if v is not None}
            cap = limits.max_row_chars
            if cap and len(json.dumps(cells, ensure_ascii=False, default=str)) > cap:
                yield number, RowError(f"the row is longer than {cap} characters")
                continue
            yield number, cells


@dataclass(frozen=True)
class Header:
    """The columns of a CSV or parquet file, checked once before its rows."""

    columns: list[str]


_READERS: dict[str, Callable[[Path, Limits], Iterator[Row]]] = {
    ".jsonl": _read_jsonl,
    ".ndjson": _read_jsonl,
    ".csv": _read_csv,
    ".parquet": _read_parquet,
}


def read_rows(path: Path, limits: Limits = NO_LIMITS) -> Iterator[Row]:
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        known = ", ".join(_READERS)
        raise DataError(path, [f"unsupported file type {path.suffix or '(none)'!r} (use {known})"])
    if not path.is_file():
        raise DataError(path, ["file not found"])
    try:
        yield from reader(path, limits)
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        raise DataError(path, [f"cannot read the file: {exc}"]) from None
    except Exception as exc:  # pyarrow raises its own types for a corrupt file
        if type(exc).__module__.startswith("pyarrow"):
            raise DataError(path, [f"cannot read the parquet file: {exc}"]) from None
        raise


def check_header(path: Path, columns: list[str], required: Sequence[tuple[str, ...]]) -> None:
    problems = []
    seen: set[str] = set()
    for column in columns:
        if column in seen:
            problems.append(f"header: column {column!r} appears more than once")
        seen.add(column)
    for names in required:
        if not seen.intersection(names):
            wanted = " or ".join(f'"{n}"' for n in names)
            problems.append(f"header: no {wanted} column")
    if problems:
        raise DataError(path, problems)
