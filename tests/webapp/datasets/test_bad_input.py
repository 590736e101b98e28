"""Bad uploads: a message that names the problem (and the line), and nothing stored — no row, no file."""

from __future__ import annotations

import gzip
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from webapp.core.ownership import Owner
from webapp.datasets import services
from webapp.datasets.ingest import UploadError
from webapp.datasets.models import Dataset

from .conftest import Upload, jsonl, nothing_stored, upload_file

pytestmark = pytest.mark.django_db


def _rejected(response: Any, media_root: Path, *needles: str, status: int = 400) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == status, body
    assert set(body) >= {"message", "code"}
    for needle in needles:
        assert needle in body["message"], body["message"]
    assert nothing_stored(media_root)
    return body


def test_malformed_json_is_refused_naming_the_line(upload: Upload, media_root: Path) -> None:
    content = b'{"prompt": "ok", "answer": "1"}\n{"prompt": "broken", \n'
    body = _rejected(upload("train.jsonl", content), media_root, "line 2: malformed JSON")
    assert body["fields"]["errors"] == [
        "line 2: malformed JSON: Expecting property name enclosed in double quotes (column 22)"
    ]


def test_an_empty_file_is_refused(upload: Upload, media_root: Path) -> None:
    _rejected(upload("train.jsonl", b""), media_root, "empty")


def test_a_file_of_blank_lines_is_refused_as_having_no_rows(upload: Upload, media_root: Path) -> None:
    _rejected(upload("train.jsonl", b"\n\n  \n"), media_root, "no rows")


def test_a_file_in_another_encoding_is_refused_naming_the_line(upload: Upload, media_root: Path) -> None:
    content = '{"prompt": "ok", "answer": "1"}\n{"prompt": "café?", "answer": "1"}\n'.encode("latin-1")
    _rejected(upload("train.jsonl", content), media_root, "line 2: not UTF-8 text")


def test_a_latin1_csv_is_refused_naming_the_line(upload: Upload, media_root: Path) -> None:
    content = "prompt,answer\nok,1\ncafé?,2\n".encode("latin-1")
    _rejected(upload("train.csv", content), media_root, "line 3: not UTF-8 text")


def test_binary_data_is_refused(upload: Upload, media_root: Path) -> None:
    _rejected(upload("train.jsonl", bytes(range(256)) * 8), media_root, "binary data")


def test_a_file_over_the_upload_limit_is_refused_with_413(upload: Upload, media_root: Path, settings: Any) -> None:
    settings.ARPO_UPLOAD_MAX_BYTES = 1000
    content = jsonl([{"prompt": "x" * 100, "answer": "1"}] * 20)
    _rejected(upload("train.jsonl", content), media_root, "over the 1000 bytes upload limit", status=413)


def test_a_gzip_bomb_is_stopped_at_the_decompressed_limit(upload: Upload, media_root: Path, settings: Any) -> None:
    settings.ARPO_DECOMPRESSED_MAX_BYTES = 1_000_000
    bomb = gzip.compress(b"\n" * 50_000_000)  # ~50 KB that inflates to 50 MB
    assert len(bomb) < 100_000
    _rejected(upload("train.jsonl.gz", bomb), media_root, "decompresses to more than", "compression bomb")


def test_a_corrupt_gzip_file_is_refused(upload: Upload, media_root: Path) -> None:
    _rejected(upload("train.jsonl.gz", b"\x1f\x8b\x08\x00garbage"), media_root, "not a valid gzip file")


def test_zip_archives_are_refused(upload: Upload, media_root: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("train.jsonl", b"\n" * 10_000_000)
    _rejected(upload("train.zip", buffer.getvalue()), media_root, "zip archives are not accepted")
    _rejected(upload("train.jsonl", buffer.getvalue()), media_root, "zip archives are not accepted")


def test_a_file_named_dot_dot_is_refused(upload: Upload, media_root: Path) -> None:
    # Django drops an upload named ".." entirely; the API says which field is missing.
    _rejected(upload("..", jsonl([{"prompt": "q", "answer": "a"}])), media_root, "file")


class _RawFile:
    """An upload whose name nobody sanitized (Django's own file classes strip folders on assignment)."""

    def __init__(self, name: str, content: bytes) -> None:
        self.name, self.size, self._content = name, len(content), content

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        yield self._content


def test_the_service_refuses_a_file_name_holding_a_path(alice: Any, media_root: Path) -> None:
    with pytest.raises(UploadError, match="plain name, without folders"):
        services.dataset_create(
            user=alice, owner=Owner(user=alice), kind="prompts", file=_RawFile("../../etc/x.jsonl", b"{}\n")
        )
    assert nothing_stored(media_root)


def test_an_unknown_file_type_is_refused(upload: Upload, media_root: Path) -> None:
    _rejected(upload("notes.txt", b"hello\n"), media_root, "unsupported file type '.txt'")


def test_a_parquet_name_on_other_data_is_refused(upload: Upload, media_root: Path) -> None:
    _rejected(upload("train.parquet", b'{"prompt": "q"}\n'), media_root, "not a parquet file")


def test_a_corrupt_parquet_file_is_refused(upload: Upload, media_root: Path) -> None:
    _rejected(upload("train.parquet", b"PAR1 but nothing else"), media_root, "cannot read the parquet file")


@pytest.mark.parametrize(
    "cell", ['=HYPERLINK("http://evil.example","click")', "@SUM(1+1)", "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0"]
)
def test_csv_formula_cells_are_refused_naming_line_and_column(upload: Upload, media_root: Path, cell: str) -> None:
    content = f'prompt,answer\nfine,1\n"{cell.replace(chr(34), chr(34) * 2)}",2\n'.encode()
    _rejected(upload("train.csv", content), media_root, 'line 2: column "prompt" starts with', "formula")


def test_duplicate_csv_columns_are_refused(upload: Upload, media_root: Path) -> None:
    _rejected(
        upload("train.csv", b"prompt,answer,answer\nq,1,2\n"), media_root, "column 'answer' appears more than once"
    )


def test_duplicate_json_keys_are_refused(upload: Upload, media_root: Path) -> None:
    content = b'{"prompt": "q", "answer": "1", "answer": "2"}\n'
    _rejected(upload("train.jsonl", content), media_root, "line 1: duplicate key 'answer'")


def test_a_csv_without_an_answer_column_is_refused(upload: Upload, media_root: Path) -> None:
    _rejected(upload("train.csv", b"question,notes\nq,n\n"), media_root, 'no "answer" or "ground_truth"')


def test_rows_without_answers_are_refused_naming_each_line(upload: Upload, media_root: Path) -> None:
    content = jsonl([{"prompt": "a", "answer": "1"}, {"prompt": "b"}, {"prompt": "c", "answer": ""}])
    body = _rejected(upload("train.jsonl", content), media_root, "2 problems", "line 2: missing answer")
    assert [e.split(":")[0] for e in body["fields"]["errors"]] == ["line 2", "line 3"]


def test_only_the_first_fifty_problems_are_listed_with_the_total(upload: Upload, media_root: Path) -> None:
    body = _rejected(upload("train.jsonl", jsonl([{"prompt": f"q{i}"} for i in range(80)])), media_root, "80 problems")
    assert len(body["fields"]["errors"]) == 50 and body["fields"]["errors"][-1].startswith("line 50:")
    assert "(and 79 more)" in body["message"]


def test_a_file_over_the_row_limit_is_refused(upload: Upload, media_root: Path, settings: Any) -> None:
    settings.ARPO_DATASET_MAX_ROWS = 3
    content = jsonl([{"prompt": f"q{i}", "answer": "1"} for i in range(5)])
    _rejected(upload("train.jsonl", content), media_root, "line 4: the file has more than 3 rows")


def test_a_row_over_the_length_limit_is_refused(upload: Upload, media_root: Path, settings: Any) -> None:
    settings.ARPO_DATASET_MAX_ROW_CHARS = 100
    content = jsonl([{"prompt": "short", "answer": "1"}, {"prompt": "x" * 5000, "answer": "1"}])
    _rejected(upload("train.jsonl", content), media_root, "line 2: the line is longer than 100 characters")


def test_a_bad_eval_file_is_refused_and_named(upload: Upload, media_root: Path) -> None:
    response = upload(
        "train.jsonl", jsonl([{"prompt": "q", "answer": "1"}]), eval_file=("held_out.jsonl", b'{"prompt": "x"}\n')
    )
    _rejected(response, media_root, "eval file held_out.jsonl", "line 1: missing answer")


def test_an_eval_file_and_an_eval_percent_together_are_refused(upload: Upload, media_root: Path) -> None:
    rows = jsonl([{"prompt": "q", "answer": "1"}] * 4)
    _rejected(upload("t.jsonl", rows, eval_file=("e.jsonl", rows), eval_percent=10), media_root, "not both")


def test_an_eval_percent_that_leaves_no_eval_rows_is_refused(upload: Upload, media_root: Path) -> None:
    _rejected(upload("t.jsonl", jsonl([{"prompt": "q", "answer": "1"}] * 3), eval_percent=5), media_root, "no eval")


def test_a_bad_search_corpus_is_refused_naming_the_line(upload: Upload, media_root: Path) -> None:
    content = jsonl([{"title": "A", "text": "alpha"}, {"title": "B"}, {"id": 1, "text": "x"}, {"id": 1, "text": "y"}])
    body = _rejected(upload("corpus.jsonl", content, kind="corpus"), media_root, "line 2")
    assert body["fields"]["errors"] == [
        'line 2: "text" must be a non-empty string',
        'line 4: duplicate document id "1"',
    ]


def test_bad_sft_demonstrations_are_refused_naming_the_line(upload: Upload, media_root: Path) -> None:
    content = jsonl([{"messages": [{"role": "user", "content": "q"}, {"role": "robot", "content": "beep"}]}])
    _rejected(upload("sft.jsonl", content, kind="sft"), media_root, "line 1:", "role 'robot'")


def test_a_transaction_rolled_back_after_the_upload_leaves_no_dataset_folder(alice: Any, media_root: Path) -> None:
    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        services.dataset_create(
            user=alice,
            owner=Owner(user=alice),
            kind="prompts",
            file=upload_file("t.jsonl", b'{"prompt":"q","answer":"1"}\n'),
        )
        raise Abort
    assert Dataset.objects.count() == 0
    assert not (media_root / "datasets").exists() or not any((media_root / "datasets").glob("*/train.jsonl"))
    services.sweep_stale_work(media_root / "datasets", older_than_s=0)  # the next upload sweeps what is left
    assert nothing_stored(media_root)
