"""Uploading datasets over the API: accepted shapes, the split, SFT and corpus, and the stored files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from arpo_engine.data import load_samples, load_sft_demos
from webapp.datasets.models import Dataset

from .conftest import DEMO, Upload, jsonl

pytestmark = pytest.mark.django_db


def test_the_demo_dataset_uploads_with_every_row_stored_normalized(upload: Upload) -> None:
    response = upload("train.jsonl", (DEMO / "train.jsonl").read_bytes(), name="Demo")
    assert response.status_code == 201, response.json()
    body = response.json()
    dataset = Dataset.objects.get(pk=body["id"])
    demo = load_samples(DEMO / "train.jsonl")
    assert body["rows"] == len(demo) and body["train_rows"] == len(demo) and body["eval_rows"] == 0
    assert body["format"] == "jsonl" and body["kind"] == "prompts" and body["name"] == "Demo"
    stored = load_samples(dataset.train_path())  # type: ignore[arg-type]
    assert [s.messages for s in stored] == [s.messages for s in demo]
    assert [s.answers for s in stored] == [s.answers for s in demo]
    assert [s.data_source for s in stored] == [s.data_source for s in demo]
    assert dataset.eval_path() is None


def _verl_row(question: str, truth: str) -> dict[str, Any]:
    return {
        "data_source": "math_dapo",
        "prompt": [{"role": "user", "content": question}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": truth},
        "extra_info": {"index": 3, "split": "train"},
    }


def test_verl_parquet_uploads_with_the_backspace_boxed_repaired(upload: Upload, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "dapo.parquet"
    rows = [_verl_row("Put it in \x08oxed{}: 6*7?", "42"), _verl_row("And \x08oxed{2+2}?", "\x08oxed{4}")]
    pq.write_table(pa.Table.from_pylist(rows), path)
    response = upload("dapo.parquet", path.read_bytes())
    assert response.status_code == 201, response.json()
    assert response.json()["format"] == "parquet"
    stored = load_samples(Dataset.objects.get().train_path())  # type: ignore[arg-type]
    assert stored[0].messages == [{"role": "user", "content": "Put it in \\boxed{}: 6*7?"}]
    assert stored[1].answers == ("\\boxed{4}",)
    assert stored[0].data_source == "math_dapo" and stored[0].extra["extra_info"] == {"index": 3, "split": "train"}
    assert "\x08" not in Dataset.objects.get().train_path().read_text()  # type: ignore[union-attr]


def test_csv_uploads_with_extra_columns_kept(upload: Upload) -> None:
    content = b"question,answer,level\nWhat is 2+2?,4,easy\nWhat is -3 + 5?,2,easy\n"
    response = upload("maths.csv", content)
    assert response.status_code == 201, response.json()
    samples = load_samples(Dataset.objects.get().train_path())  # type: ignore[arg-type]
    assert [s.answers for s in samples] == [("4",), ("2",)]
    assert samples[1].messages[0]["content"] == "What is -3 + 5?" and samples[1].extra["level"] == "easy"
    assert samples[0].data_source == "maths"


def test_gzipped_jsonl_is_inflated_and_stored(upload: Upload) -> None:
    import gzip

    response = upload("train.jsonl.gz", gzip.compress(jsonl([{"prompt": "1+1?", "answer": "2"}])))
    assert response.status_code == 201, response.json()
    assert response.json()["format"] == "jsonl" and response.json()["original_name"] == "train.jsonl.gz"


def _split(upload: Upload, seed: int) -> tuple[list[str], list[str]]:
    rows = [{"prompt": f"q{i}", "answer": str(i)} for i in range(40)]
    body = upload("rows.jsonl", jsonl(rows), eval_percent=25, split_seed=seed).json()
    dataset = Dataset.objects.get(pk=body["id"])
    train = [s.messages[0]["content"] for s in load_samples(dataset.train_path())]  # type: ignore[arg-type]
    evals = [s.messages[0]["content"] for s in load_samples(dataset.eval_path())]  # type: ignore[arg-type]
    return train, evals


def test_eval_percent_carves_off_the_same_rows_for_the_same_seed(upload: Upload) -> None:
    train, evals = _split(upload, seed=7)
    again_train, again_evals = _split(upload, seed=7)
    _, other_evals = _split(upload, seed=8)
    assert len(evals) == 10 and len(train) == 30
    assert sorted(train + evals) == sorted(f"q{i}" for i in range(40))
    assert (again_train, again_evals) == (train, evals)
    assert other_evals != evals
    body = Dataset.objects.order_by("id").first()
    assert body is not None and (body.train_rows, body.eval_rows, body.eval_percent) == (30, 10, 25)


def test_a_separate_eval_file_becomes_the_eval_split(upload: Upload) -> None:
    train = jsonl([{"prompt": "a?", "answer": "1"}, {"prompt": "b?", "answer": "2"}])
    evals = jsonl([{"question": "c?", "ground_truth": "3"}])
    response = upload("train.jsonl", train, eval_file=("eval.jsonl", evals))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["train_rows"], body["eval_rows"], body["eval_original_name"]) == (2, 1, "eval.jsonl")
    (sample,) = load_samples(Dataset.objects.get().eval_path())  # type: ignore[arg-type]
    assert sample.messages[0]["content"] == "c?" and sample.answers == ("3",)


def test_sft_demonstrations_upload_with_tool_turns_and_spans_checked(upload: Upload) -> None:
    response = upload("sft_tags.jsonl", (DEMO / "sft_tags.jsonl").read_bytes(), kind="sft")
    assert response.status_code == 201, response.json()
    dataset = Dataset.objects.get()
    demos = load_sft_demos(DEMO / "sft_tags.jsonl")
    stored = load_sft_demos(dataset.sft_path())  # type: ignore[arg-type]
    assert [(d.messages, d.spans) for d in stored] == [(d.messages, d.spans) for d in demos]
    assert dataset.stats["tool_result_spans"] == sum(len(d.spans) for d in demos) > 0
    assert dataset.train_path() is None and dataset.corpus_path() is None


def test_corpus_upload_is_indexed_once_and_the_search_tool_reuses_the_index(upload: Upload) -> None:
    from arpo_engine.tools import search

    response = upload("corpus.jsonl", (DEMO / "corpus.jsonl").read_bytes(), kind="corpus")
    assert response.status_code == 201, response.json()
    dataset = Dataset.objects.get()
    corpus = dataset.corpus_path()
    assert corpus is not None and dataset.corpus_index_path() == corpus.with_suffix(".index")
    documents = search.load_corpus(corpus)
    assert len(documents) == dataset.rows == len(search.load_corpus(DEMO / "corpus.jsonl"))
    assert search._load_index(corpus, len(documents)) is not None  # the saved index matches: no rebuild
    tool = search.SearchTool(corpus_path=corpus, top_k=1)
    first = json.loads((DEMO / "corpus.jsonl").read_text().splitlines()[0])
    assert first["title"] in tool.run({"query": first["title"]}).output


def test_a_file_name_with_folders_is_reduced_to_its_last_part_and_never_used_as_a_path(
    upload: Upload, media_root: Path
) -> None:
    response = upload("../../../escape.jsonl", jsonl([{"prompt": "q", "answer": "a"}]))
    assert response.status_code == 201, response.json()
    assert response.json()["original_name"] == "escape.jsonl"
    files = sorted(p.relative_to(media_root).as_posix() for p in media_root.rglob("*") if p.is_file())
    assert files == [f"datasets/{Dataset.objects.get().uid}/train.jsonl"]
    assert not (media_root.parent / "escape.jsonl").exists()
