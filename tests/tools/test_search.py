"""The search tool: BM25 top-k snippets over an uploaded corpus, and clear errors for bad corpora."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from arpo_engine.tools.search import SearchTool, load_corpus

DOCUMENTS = [
    {"id": "fr", "title": "France", "text": "Paris is the capital and largest city of France."},
    {"id": "de", "title": "Germany", "text": "Berlin is the capital of Germany and its largest city."},
    {"id": "cat", "title": "Cat", "text": "The cat is a small domesticated carnivorous mammal."},
    {"id": "py", "title": "Python", "text": "Python is a programming language created by Guido van Rossum."},
    {"text": "Mount Everest is the highest mountain above sea level, in the Himalayas."},
]


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "corpus.jsonl", DOCUMENTS)


def test_search_returns_numbered_snippets_best_first(corpus: Path) -> None:
    result = SearchTool(corpus_path=corpus).run({"query": "What is the capital of France?"})
    assert result.error is None
    lines = result.output.splitlines()
    assert lines[0] == "1. France: Paris is the capital and largest city of France."
    assert lines[1].startswith("2. Germany: Berlin")
    assert result.details["doc_ids"][:2] == ["fr", "de"]


def test_only_documents_sharing_a_word_with_the_query_are_returned(corpus: Path) -> None:
    result = SearchTool(corpus_path=corpus, top_k=5).run({"query": "highest mountain"})
    assert result.output == "1. Mount Everest is the highest mountain above sea level, in the Himalayas."
    assert result.details["doc_ids"] == ["4"]  # rows without an id are numbered by position


def test_top_k_limits_the_number_of_snippets(corpus: Path) -> None:
    result = SearchTool(corpus_path=corpus, top_k=1).run({"query": "capital city"})
    assert len(result.output.splitlines()) == 1


def test_snippets_are_cut_to_snippet_chars_with_an_ellipsis(corpus: Path) -> None:
    result = SearchTool(corpus_path=corpus, top_k=1, snippet_chars=10).run({"query": "Guido"})
    assert result.output == "1. Python: Python is…"


def test_empty_query_is_an_error_observation(corpus: Path) -> None:
    result = SearchTool(corpus_path=corpus).run({"query": "   "})
    assert result.error == "bad_arguments"
    assert "empty" in result.output


def test_query_without_known_words_says_nothing_matched(corpus: Path) -> None:
    result = SearchTool(corpus_path=corpus).run({"query": "zeppelin quasar"})
    assert result.error is None
    assert result.output.startswith("No documents matched 'zeppelin quasar'")


def test_query_of_only_stopwords_says_nothing_matched(corpus: Path) -> None:
    result = SearchTool(corpus_path=corpus).run({"query": "the and of"})
    assert result.output.startswith("No documents matched")


def test_plain_text_corpus_has_one_document_per_line(tmp_path: Path) -> None:
    corpus = tmp_path / "facts.txt"
    corpus.write_text("Water boils at 100 degrees Celsius.\n\nIron rusts in moist air.\n")
    tool = SearchTool(corpus_path=corpus)
    assert len(tool.documents) == 2
    assert tool.run({"query": "boiling water"}).output == "1. Water boils at 100 degrees Celsius."


def test_parallel_searches_agree_with_a_single_search(corpus: Path) -> None:
    tool = SearchTool(corpus_path=corpus)
    queries = ["capital of France", "small mammal", "programming language", "Himalayas"] * 4
    expected = [tool.run({"query": q}).output for q in queries]
    fresh = SearchTool(corpus_path=corpus)  # its index is built by whichever thread comes first
    with ThreadPoolExecutor(max_workers=8) as pool:
        outputs = list(pool.map(lambda q: fresh.run({"query": q}).output, queries))
    assert outputs == expected


def test_missing_corpus_file_raises_a_value_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.jsonl"
    with pytest.raises(ValueError, match=f"search corpus {missing} does not exist"):
        SearchTool(corpus_path=missing)


def test_empty_corpus_raises_a_value_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n")
    with pytest.raises(ValueError, match="contains no documents"):
        load_corpus(empty)


def test_malformed_jsonl_row_is_reported_with_its_line_number(tmp_path: Path) -> None:
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text('{"text": "fine"}\n\n{"text": "broken\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 3: not valid JSON"):
        load_corpus(corpus)


def test_row_without_text_is_reported_with_its_line_number(tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "notext.jsonl", [{"text": "fine"}, {"title": "No body"}])
    with pytest.raises(ValueError, match=r'line 2: "text" must be a non-empty string'):
        load_corpus(corpus)


def test_top_k_must_be_positive(corpus: Path) -> None:
    with pytest.raises(ValueError, match="top_k"):
        SearchTool(corpus_path=corpus, top_k=0)
