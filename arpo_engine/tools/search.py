"""The `search` tool: BM25 top-k retrieval over a corpus the user uploads (ARPO_SPEC.md §1).

The official ARPO code returns Bing snippets through a paid proxy; here the user supplies the corpus,
so runs are reproducible and need no internet. The corpus is JSONL (`{"id"?, "title"?, "text"}` per
line) or plain text (one document per line). The `bm25s` index is built on the first call (or by
`build_index()`), once, under a lock; afterwards calls only read it, so `run` is thread-safe.
An index saved by `save_index` beside the corpus (`corpus.jsonl` -> `corpus.index/`, as the web app
does on upload) is loaded instead of rebuilt when it still matches the corpus file.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arpo_engine.tools.base import ToolResult, function_schema

DEFAULT_DESCRIPTION = (
    "Search the document collection with keywords and return the best matching passages, "
    "each as a numbered snippet with its title."
)


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str


@dataclass(frozen=True)
class _Index:
    retriever: Any  # bm25s.BM25
    tokenizer: Any  # bm25s.tokenization.Tokenizer, with the corpus vocabulary
    empty_token_id: int | None


class SearchTool:
    """`kind: search`. Output: "1. Title: text…" per hit, best first."""

    primary_argument = "query"

    def __init__(
        self,
        name: str = "search",
        *,
        corpus_path: str | Path,
        top_k: int = 3,
        snippet_chars: int = 300,
        description: str | None = None,
        schema: Mapping[str, Any] | None = None,
    ) -> None:
        if top_k < 1:
            raise ValueError(f"search tool option top_k must be at least 1, got {top_k}")
        if snippet_chars < 1:
            raise ValueError(f"search tool option snippet_chars must be at least 1, got {snippet_chars}")
        self.name = name
        self.top_k = top_k
        self.snippet_chars = snippet_chars
        # Read (and validated) now, so a bad upload fails when the run is built, not mid-rollout.
        self.documents = load_corpus(corpus_path)
        self.corpus_path = Path(corpus_path)
        self._description = description or DEFAULT_DESCRIPTION
        self._schema = schema
        self._index: _Index | None = None
        self._lock = threading.Lock()

    def schema(self) -> dict[str, Any]:
        if self._schema is not None:
            return copy.deepcopy(dict(self._schema))
        query = {"type": "string", "description": "Keywords or a question to search for."}
        return function_schema(self.name, self._description, {"query": query}, ["query"])

    def build_index(self) -> None:
        with self._lock:
            if self._index is None:
                saved = _load_index(self.corpus_path, len(self.documents))
                self._index = saved or _build_index(self.documents)

    def run(self, arguments: Mapping[str, Any]) -> ToolResult:
        started = time.perf_counter()
        query = arguments.get(self.primary_argument)
        if not isinstance(query, str) or not query.strip():
            return ToolResult(
                output="The search query is empty: give keywords or a question to search for.",
                error="bad_arguments",
            )
        try:
            hits = self.search(query)
        except Exception as exc:  # the agent loop must never see an exception
            return ToolResult(output=f"Search failed: {exc}", error="search_failed")
        latency_ms = (time.perf_counter() - started) * 1000
        if not hits:
            return ToolResult(
                output=f"No documents matched {query.strip()!r}. Try other or fewer keywords.",
                latency_ms=latency_ms,
                details={"doc_ids": [], "scores": []},
            )
        lines = [f"{i}. {self._snippet(doc)}" for i, (doc, _) in enumerate(hits, start=1)]
        details = {"doc_ids": [d.id for d, _ in hits], "scores": [round(s, 4) for _, s in hits]}
        return ToolResult(output="\n".join(lines), latency_ms=latency_ms, details=details)

    def search(self, query: str) -> list[tuple[Document, float]]:
        """The top-k documents with a positive BM25 score, best first."""
        self.build_index()
        index = self._index
        assert index is not None
        ids = index.tokenizer.tokenize([query], update_vocab=False, return_as="ids", show_progress=False)[0]
        # Words outside the corpus vocabulary are dropped by the tokenizer; "" stands for none left.
        ids = [i for i in ids if i != index.empty_token_id]
        if not ids:
            return []
        scores = index.retriever.get_scores(ids)
        best = scores.argsort()[::-1][: self.top_k]
        return [(self.documents[i], float(scores[i])) for i in best if scores[i] > 0]

    def _snippet(self, doc: Document) -> str:
        text = " ".join(doc.text.split())
        if len(text) > self.snippet_chars:
            text = text[: self.snippet_chars].rstrip() + "…"
        return f"{doc.title}: {text}" if doc.title else text


def _build_index(documents: Sequence[Document]) -> _Index:
    import bm25s  # imported here: numpy/scipy load only when a search tool is used
    from bm25s.tokenization import Tokenizer

    tokenizer = Tokenizer(stopwords="en")
    corpus = [f"{d.title}\n{d.text}" if d.title else d.text for d in documents]
    tokens = tokenizer.tokenize(corpus, update_vocab=True, return_as="tuple", show_progress=False)
    retriever = bm25s.BM25()
    retriever.index(tokens, show_progress=False)
    return _Index(retriever, tokenizer, tokenizer.get_vocab_dict().get(""))


_MANIFEST = "manifest.json"


def index_folder(corpus_path: str | Path) -> Path:
    """Where the saved index of a corpus lives: beside it, `corpus.jsonl` -> `corpus.index/`."""
    return Path(corpus_path).with_suffix(".index")


def save_index(corpus_path: str | Path) -> int:
    """Build the BM25 index of a corpus file once and save it beside it (atomically); the vocabulary size."""
    corpus = Path(corpus_path)
    documents = load_corpus(corpus)
    index = _build_index(documents)
    folder = index_folder(corpus)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        index.retriever.save(str(tmp), show_progress=False)
        index.tokenizer.save_vocab(str(tmp))
        manifest = {"documents": len(documents), "corpus_sha256": _sha256(corpus)}
        (tmp / _MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return len(index.tokenizer.get_vocab_dict())


def _load_index(corpus_path: Path, documents: int) -> _Index | None:
    """The saved index when it was built from this very corpus file; None otherwise (then it is rebuilt)."""
    folder = index_folder(corpus_path)
    try:
        manifest = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
        if manifest != {"documents": documents, "corpus_sha256": _sha256(corpus_path)}:
            return None
        import bm25s
        from bm25s.tokenization import Tokenizer

        retriever = bm25s.BM25.load(str(folder), show_progress=False)
        tokenizer = Tokenizer(stopwords="en")
        tokenizer.load_vocab(str(folder))
    except (OSError, ValueError, KeyError):  # missing, partial or foreign files: rebuild instead
        return None
    return _Index(retriever, tokenizer, tokenizer.get_vocab_dict().get(""))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Corpus files


def load_corpus(path: str | Path) -> list[Document]:
    """Documents of a JSONL or .txt corpus; ValueError naming the file (and line) when unusable."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"search corpus {p} does not exist or is not a file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"search corpus {p} is not UTF-8 text: {exc}") from None
    documents = _read_text_lines(text) if p.suffix == ".txt" else _read_jsonl(p, text)
    if not documents:
        raise ValueError(f"search corpus {p} contains no documents")
    return documents


def _read_text_lines(text: str) -> list[Document]:
    lines = (line.strip() for line in text.splitlines())
    return [Document(id=str(i), title="", text=line) for i, line in enumerate(lines) if line]


def _read_jsonl(path: Path, text: str) -> list[Document]:
    documents: list[Document] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            documents.append(_parse_row(path, number, line, default_id=str(len(documents))))
    return documents


def _parse_row(path: Path, number: int, line: str, *, default_id: str) -> Document:
    where = f"search corpus {path}, line {number}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object with a \"text\" field")
    body = row.get("text")
    if not isinstance(body, str) or not body.strip():
        raise ValueError(f"{where}: \"text\" must be a non-empty string")
    title = row.get("title", "")
    if not isinstance(title, str):
        raise ValueError(f"{where}: \"title\" must be a string")
    doc_id = row.get("id", default_id)
    if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool):
        raise ValueError(f"{where}: \"id\" must be a string or an integer")
    return Document(id=str(doc_id), title=title.strip(), text=body)
