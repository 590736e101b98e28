"""Hypothesis fuzz of the upload endpoint: random bytes, JSONL-ish and CSV-ish text, random names and
fields. Whatever arrives, the answer is never a 5xx, a refusal always carries the one error shape, and
every stored dataset has its files in place."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webapp.datasets.models import Dataset

from .conftest import Upload

pytestmark = pytest.mark.django_db

KEYS = ["prompt", "question", "messages", "answer", "ground_truth", "data_source", "tools", "reward_model", "text",
        "title", "id", "spans", "extra_info", "role", "content"]  # fmt: skip
SUFFIXES = [".jsonl", ".csv", ".parquet", ".jsonl.gz", ".gz", ".zip", ".txt", ".json", "", ".ndjson"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
    max_leaves=12,
)
rows = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), json_values, max_size=6)
jsonl_text = st.lists(rows.map(json.dumps) | st.text(max_size=40), max_size=12).map(lambda ls: "\n".join(ls))
csv_text = st.lists(st.lists(st.text(max_size=12), min_size=1, max_size=4).map(",".join), max_size=8).map(
    lambda ls: "prompt,answer\n" + "\n".join(ls)
)
contents = (
    st.binary(max_size=3000)
    | jsonl_text.map(str.encode)
    | csv_text.map(str.encode)
    | jsonl_text.map(lambda t: gzip.compress(t.encode()))
    | st.text(max_size=500).map(lambda t: t.encode("utf-16"))
)
names = st.builds(
    lambda stem, suffix: stem + suffix,
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters='"\r\n\\'), max_size=30)
    | st.sampled_from(["..", "../../x", "train", "a/b/c", " ", "CON"]),
    st.sampled_from(SUFFIXES),
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from(["prompts", "sft", "corpus", "bogus", ""]),
        "eval_percent": st.integers(-5, 120).map(str) | st.text(max_size=4),
        "split_seed": st.integers(-10, 2**40).map(str),
        "team": st.sampled_from(["", "lab", "nope", "1", "-1"]),
        "name": st.text(max_size=250),
    },
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(name=names, content=contents, extra=fields)
def test_no_upload_gets_a_server_error(upload: Upload, name: str, content: bytes, extra: dict[str, Any]) -> None:
    response = upload(name, content, **extra)
    assert response.status_code < 500, (name, content[:200], extra, response.content[:500])
    body = response.json()
    if response.status_code >= 400:
        assert isinstance(body.get("message"), str) and body["message"] and body.get("code")
    else:
        dataset = Dataset.objects.get(pk=body["id"])
        assert dataset.storage_dir().is_dir()
