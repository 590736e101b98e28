"""The demo task: deterministic, split cleanly, answerable from the corpus, and its SFT demos are real.

Generation runs the real tools (BM25 search, sandboxed Python) on a small world, once per module.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from arpo_engine.config import ToolConfig
from arpo_engine.data import load_samples, load_sft_demos
from arpo_engine.demo import INSTRUCTIONS, generate
from arpo_engine.demo.__main__ import main
from arpo_engine.demo.task import TEMPLATES, draw_questions
from arpo_engine.demo.world import build_world
from arpo_engine.rollout.formats import get_format
from arpo_engine.tools.base import Tool
from arpo_engine.tools.registry import build_tools

FILES = (
    "corpus.jsonl",
    "train.jsonl",
    "eval.jsonl",
    "sft_tags.jsonl",
    "sft_hermes.jsonl",
    "tools.json",
    "instructions.txt",
    "manifest.json",
)
# Written here, not imported: the test reads the corpus the way a person would.
ATTRIBUTE_PATTERNS = {
    "founded": r"founded in (\d+)",
    "population": r"population of (\d+)",
    "elevation": r"(\d+) metres",
    "bridges": r"(\d+) bridges",
    "employees": r"(\d+) employees",
    "offices": r"(\d+) offices",
    "born": r"born in (\d+)",
    "height": r"(\d+) cm",
    "books": r"(\d+) books",
}


def _small(out: Path, *, seed: int) -> None:
    generate(out, seed=seed, n_entities=30, n_train=60, n_eval=20, n_sft=16)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    _small(out, seed=0)
    return out


@pytest.fixture(scope="module")
def tools(demo_dir: Path) -> dict[str, Tool]:
    configs = [ToolConfig(**c) for c in json.loads((demo_dir / "tools.json").read_text())]
    resolved = [
        ToolConfig(c.name, c.kind, options={**c.options, "corpus_path": str(demo_dir / "corpus.jsonl")})
        if c.kind == "search"
        else c
        for c in configs
    ]
    return build_tools(resolved)


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _corpus_facts(demo_dir: Path) -> dict[str, dict[str, int]]:
    facts: dict[str, dict[str, int]] = {}
    for doc in _rows(demo_dir / "corpus.jsonl"):
        found = {}
        for attribute, pattern in ATTRIBUTE_PATTERNS.items():
            values = re.findall(pattern, doc["text"], re.IGNORECASE)
            assert len(values) <= 1, f"{doc['title']}: {attribute} stated twice"
            if values:
                found[attribute] = int(values[0])
        facts[doc["title"]] = found
    return facts


# --- generation ----------------------------------------------------------------------------------


def test_generation_writes_every_file(demo_dir: Path) -> None:
    assert sorted(p.name for p in demo_dir.iterdir()) == sorted(FILES)
    manifest = json.loads((demo_dir / "manifest.json").read_text())
    assert (manifest["train"]["rows"], manifest["eval"]["rows"], manifest["sft"]["rows"]) == (60, 20, 16)


def test_generation_is_deterministic_per_seed(demo_dir: Path, tmp_path: Path) -> None:
    again, other = tmp_path / "again", tmp_path / "other"
    _small(again, seed=0)
    _small(other, seed=1)
    for name in FILES:
        assert (again / name).read_bytes() == (demo_dir / name).read_bytes(), name
    assert (other / "corpus.jsonl").read_bytes() != (demo_dir / "corpus.jsonl").read_bytes()
    assert (other / "train.jsonl").read_bytes() != (demo_dir / "train.jsonl").read_bytes()


def test_generating_twice_into_one_folder_gives_the_same_files(demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "twice"
    _small(out, seed=0)
    _small(out, seed=0)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert (out / "sft_tags.jsonl").read_bytes() == (demo_dir / "sft_tags.jsonl").read_bytes()


def test_train_and_eval_share_no_entities_and_no_questions(demo_dir: Path) -> None:
    train, held_out = _rows(demo_dir / "train.jsonl"), _rows(demo_dir / "eval.jsonl")
    sft = _rows(demo_dir / "sft_tags.jsonl")
    train_entities = {name for row in train for name in row["entities"]}
    eval_entities = {name for row in held_out for name in row["entities"]}
    assert train_entities.isdisjoint(eval_entities)
    assert {r["question"] for r in train}.isdisjoint({r["question"] for r in held_out})
    sft_questions = {r["messages"][1]["content"] for r in sft}
    assert sft_questions.isdisjoint({r["question"] for r in held_out})
    assert all(not any(name in q for name in eval_entities) for q in sft_questions)


def test_questions_within_a_split_are_distinct(demo_dir: Path) -> None:
    for split in ("train.jsonl", "eval.jsonl"):
        questions = [r["question"] for r in _rows(demo_dir / split)]
        assert len(set(questions)) == len(questions)


def test_every_answer_is_computable_from_the_corpus_text(demo_dir: Path) -> None:
    corpus = _corpus_facts(demo_dir)
    expressions = {t.id: t.expression for t in TEMPLATES}
    for split in ("train.jsonl", "eval.jsonl"):
        for row in _rows(demo_dir / split):
            assert all(name in row["question"] for name in row["entities"])
            values = [corpus[entity][attribute] for entity, attribute, _ in row["facts"]]
            expression = expressions[row["template"]].format(*values, k=row["constant"])
            assert row["code"] == f"print({expression})"
            answer = eval(expression, {"__builtins__": {}})  # only digits and + - * // % from our templates
            assert str(answer) == row["answer"], row
            assert answer > 0


def test_dataset_files_load_through_the_data_module(demo_dir: Path) -> None:
    train = load_samples(demo_dir / "train.jsonl")
    assert len(train) == 60
    assert train[0].data_source == "arpo_demo"
    assert train[0].messages[0]["role"] == "user"
    assert train[0].extra["hops"] in (1, 2)
    assert len(load_sft_demos(demo_dir / "sft_hermes.jsonl")) == 16


# --- difficulty ----------------------------------------------------------------------------------


def test_one_hop_questions_need_one_entity_and_two_hop_questions_two() -> None:
    world = build_world(random.Random(3), 60)
    one = draw_questions(random.Random(1), world.split("train"), 40, hops=(1,))
    two = draw_questions(random.Random(1), world.split("train"), 40, hops=(2,))
    assert {len(q.entities) for q in one} == {1} and {q.hops for q in one} == {1}
    assert {len(q.entities) for q in two} == {2} and {q.hops for q in two} == {2}
    assert len({q.template for q in one}) > 5 and len({q.template for q in two}) > 5


def test_unknown_hop_counts_and_tiny_worlds_are_rejected() -> None:
    world = build_world(random.Random(0), 30)
    with pytest.raises(ValueError, match="hops"):
        draw_questions(random.Random(0), world.split("train"), 5, hops=(3,))
    with pytest.raises(ValueError, match="at least 18"):
        build_world(random.Random(0), 10)


# --- SFT demonstrations --------------------------------------------------------------------------


def _call_points(content: str, spans: list[list[int]]) -> list[tuple[str, str]]:
    """(the model segment that ends in each call, the call's result text), as the rollout loop sees them."""
    ends = [0] + [end for _, end in spans]
    return [(content[ends[i] : start], content[start:end]) for i, (start, end) in enumerate(spans)]


@pytest.mark.parametrize("format_name", ["tags", "hermes"])
def test_every_sft_demo_parses_back_at_each_call_point(
    demo_dir: Path, tools: Mapping[str, Tool], format_name: str
) -> None:
    fmt = get_format(format_name)
    for row in _rows(demo_dir / f"sft_{format_name}.jsonl"):
        content = row["messages"][2]["content"]
        calls = []
        for prefix, _ in _call_points(content, row["spans"]):
            parsed = fmt.parse_call(prefix, tools)
            assert parsed is not None and parsed.error is None, prefix[-200:]
            calls.append((parsed.call.name, dict(parsed.call.arguments)))
        assert [name for name, _ in calls] == ["search"] * (len(calls) - 1) + ["python"]
        assert len(calls) == row["hops"] + 1
        assert calls[-1][1]["code"].startswith("print(")
        tail = content[row["spans"][-1][1] :]
        assert fmt.parse_call(tail, tools) is None
        assert tail.endswith(f"<answer>The answer is \\boxed{{{row['answer']}}}</answer>")


@pytest.mark.parametrize("format_name", ["tags", "hermes"])
def test_sft_tool_results_match_what_the_tools_return(
    demo_dir: Path, tools: Mapping[str, Tool], format_name: str
) -> None:
    fmt = get_format(format_name)
    for row in _rows(demo_dir / f"sft_{format_name}.jsonl"):
        content = row["messages"][2]["content"]
        for prefix, result_text in _call_points(content, row["spans"]):
            parsed = fmt.parse_call(prefix, tools)
            assert parsed is not None
            output = tools[parsed.call.name].run(parsed.call.arguments).output
            assert result_text == fmt.render_result(output)


def test_sft_demos_compute_from_numbers_they_were_shown(demo_dir: Path) -> None:
    for row in _rows(demo_dir / "sft_tags.jsonl"):
        question, content = row["messages"][1]["content"], row["messages"][2]["content"]
        (code,) = re.findall(r"<python>(.*?)</python>", content)
        searched = "".join(content[s:e] for s, e in row["spans"][:-1])
        for number in re.findall(r"\d+", code):
            # A fact read from a search result, the question's own constant, or a unit factor (cm -> mm).
            shown = rf"(?<!\d){number}(?!\d)"
            from_question = re.search(shown, question) or number == str(row["constant"])
            assert re.search(shown, searched) or from_question, (number, code)
        results = re.findall(r"<result>\n(.*?)\n</result>", content, re.DOTALL)
        assert results[-1] == row["answer"]
        assert content.count("<think>") == content.count("</think>") >= 2
        assert content.count("<answer>") == 1


@pytest.mark.parametrize("format_name", ["tags", "hermes"])
def test_sft_system_prompt_is_the_formats_prompt_with_the_task_instructions(
    demo_dir: Path, tools: Mapping[str, Tool], format_name: str
) -> None:
    expected = get_format(format_name).system_prompt(tools, INSTRUCTIONS)
    rows = _rows(demo_dir / f"sft_{format_name}.jsonl")
    assert {r["messages"][0]["content"] for r in rows} == {expected}
    assert (demo_dir / "instructions.txt").read_text().strip() == INSTRUCTIONS


# --- command line --------------------------------------------------------------------------------


def test_cli_generate_writes_the_files_and_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    args = ["generate", "--out", str(out), "--seed", "2", "--entities", "24", "--train", "10"]
    assert main([*args, "--eval", "5", "--sft", "4", "--hops", "2"]) == 0
    printed = capsys.readouterr().out
    assert f"demo task written to {out}" in printed
    assert "train    10 rows (10 with 2 hops" in printed
    assert all(r["hops"] == 2 for r in _rows(out / "train.jsonl"))
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)


def test_cli_rejects_an_unknown_hop_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["generate", "--out", str(tmp_path), "--hops", "3"])
    assert "hop counts must be 1 and/or 2" in capsys.readouterr().err
