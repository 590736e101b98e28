"""The preview: the first rows exactly as the engine renders them for the chosen base model and tools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from arpo_engine.data import load_samples, load_sft_demos
from arpo_engine.rollout.agent import build_prompt_ids
from arpo_engine.rollout.formats import get_format
from webapp.datasets.models import Dataset
from webapp.runs.models import BaseModel

from .conftest import DEMO, Upload

pytestmark = pytest.mark.django_db

SMOLLM = "smollm2-135m"


@pytest.fixture(scope="module")
def hf_tokenizer() -> Any:
    """The engine's own tokenizer (transformers) for the bundled SmolLM2: the reference for the web preview."""
    from transformers import AutoTokenizer

    folder = BaseModel(path=SMOLLM).local_folder()
    if folder is None:
        pytest.skip("the bundled SmolLM2 folder is not prepared (make run prepares it)")
    return AutoTokenizer.from_pretrained(folder)


def _demo(upload: Upload, api_for: Any, alice: Any, **params: Any) -> dict[str, Any]:
    dataset_id = upload("train.jsonl", (DEMO / "train.jsonl").read_bytes()).json()["id"]
    response = api_for(alice).get(f"/api/v1/datasets/{dataset_id}/preview/", {"base_model": SMOLLM, **params})
    assert response.status_code == 200, response.json()
    return response.json()


def test_demo_rows_render_through_the_smollm2_chat_template_as_the_engine_does(
    upload: Upload, api_for: Any, alice: Any, hf_tokenizer: Any
) -> None:
    preview = _demo(upload, api_for, alice, rows=3)
    system = get_format("tags").system_prompt({})
    assert preview["system_prompt"] == system and preview["base_model"] == SMOLLM
    for row, sample in zip(preview["rows"], load_samples(DEMO / "train.jsonl")[:3], strict=True):
        ids, text = build_prompt_ids(hf_tokenizer, sample.messages, system)
        assert row["text"] == text and row["tokens"] == len(ids)
        assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
        assert row["answers"] == list(sample.answers)


def test_the_histogram_counts_every_sampled_row(upload: Upload, api_for: Any, alice: Any) -> None:
    preview = _demo(upload, api_for, alice)
    rows = len(load_samples(DEMO / "train.jsonl"))
    assert preview["sampled_rows"] == min(rows, 500) == preview["token_stats"]["count"]
    assert sum(b["count"] for b in preview["histogram"]) == preview["sampled_rows"]
    assert preview["histogram"][0]["lo"] == preview["token_stats"]["min"]
    assert preview["histogram"][-1]["lo"] <= preview["token_stats"]["max"] <= preview["histogram"][-1]["hi"]


def test_the_chosen_tools_system_prompt_is_in_every_rendered_row(
    upload: Upload, api_for: Any, alice: Any, hf_tokenizer: Any
) -> None:
    from webapp.tools.services import tool_create

    calculator = tool_create(user=alice, name="calculator", kind="calculator")
    preview = _demo(upload, api_for, alice, tools=str(calculator.pk), call_format="hermes", rows=1)
    assert preview["tools"] == ["calculator"] and '"name": "calculator"' in preview["system_prompt"]
    sample = load_samples(DEMO / "train.jsonl")[0]
    ids, text = build_prompt_ids(hf_tokenizer, sample.messages, preview["system_prompt"])
    assert preview["rows"][0]["text"] == text and preview["rows"][0]["tokens"] == len(ids)


def test_someone_elses_tool_cannot_be_used_in_a_preview(upload: Upload, api_for: Any, alice: Any, charlie: Any) -> None:
    from webapp.tools.services import tool_create

    theirs = tool_create(user=charlie, name="calculator", kind="calculator")
    dataset_id = upload("train.jsonl", (DEMO / "train.jsonl").read_bytes()).json()["id"]
    response = api_for(alice).get(f"/api/v1/datasets/{dataset_id}/preview/", {"tools": str(theirs.pk)})
    assert response.status_code == 404


def test_an_unknown_base_model_is_a_field_error(upload: Upload, api_for: Any, alice: Any) -> None:
    dataset_id = upload("train.jsonl", (DEMO / "train.jsonl").read_bytes()).json()["id"]
    response = api_for(alice).get(f"/api/v1/datasets/{dataset_id}/preview/", {"base_model": "gpt-9"})
    assert response.status_code == 400 and "base_model" in response.json()["fields"]


def test_sft_preview_marks_the_tool_results_that_are_not_trained_on(
    upload: Upload, api_for: Any, alice: Any, hf_tokenizer: Any
) -> None:
    dataset_id = upload("sft_tags.jsonl", (DEMO / "sft_tags.jsonl").read_bytes(), kind="sft").json()["id"]
    preview = api_for(alice).get(f"/api/v1/datasets/{dataset_id}/preview/", {"rows": 1}).json()
    (row,) = preview["rows"]
    demo = load_sft_demos(DEMO / "sft_tags.jsonl")[0]
    answer = demo.messages[-1]["content"]
    assert row["text"].endswith(answer + hf_tokenizer.eos_token)
    assert [row["text"][s:e] for s, e in row["masked"]] == [answer[s:e] for s, e in demo.spans]
    assert all("<result>" in row["text"][s:e] for s, e in row["masked"])


def test_corpus_preview_shows_documents_with_token_counts(upload: Upload, api_for: Any, alice: Any) -> None:
    dataset_id = upload("corpus.jsonl", (DEMO / "corpus.jsonl").read_bytes(), kind="corpus").json()["id"]
    preview = api_for(alice).get(f"/api/v1/datasets/{dataset_id}/preview/").json()
    assert preview["rows"][0]["text"].startswith("Dreirton: Dreirton is")
    assert preview["rows"][0]["tokens"] > 10 and preview["system_prompt"] == ""


def test_the_detail_page_shows_the_rendered_rows_and_an_svg_histogram(upload: Upload, client: Any, alice: Any) -> None:
    dataset_id = upload("train.jsonl", (DEMO / "train.jsonl").read_bytes()).json()["id"]
    client.force_login(alice)
    page = client.get(f"/datasets/{dataset_id}/", {"base_model": SMOLLM}).content.decode()
    first = load_samples(DEMO / "train.jsonl")[0].messages[0]["content"]
    assert "&lt;|im_start|&gt;system" in page and first.replace("'", "&#x27;") in page
    assert "<svg" in page and "<rect" in page and "tokens" in page


def test_the_stored_files_are_what_the_preview_reads(upload: Upload, media_root: Path) -> None:
    upload("train.jsonl", (DEMO / "train.jsonl").read_bytes())
    dataset = Dataset.objects.get()
    assert dataset.train_path() == media_root / "datasets" / str(dataset.uid) / "train.jsonl"
