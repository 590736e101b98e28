"""Write the demo task to a folder: corpus, RL train/eval prompts, SFT demonstrations and tool configs.

Files (all deterministic for a seed, written atomically, so a rerun reproduces them byte for byte):
- `corpus.jsonl`          one {"id", "title", "text"} document per entity (the search corpus);
- `train.jsonl`, `eval.jsonl`  {"question", "answer", "data_source", …} rows over disjoint entity sets;
- `sft_tags.jsonl`, `sft_hermes.jsonl`  correct trajectories in each call format, tool results inline;
- `tools.json`            the run's tool configs (search over corpus.jsonl, python);
- `instructions.txt`      the task instructions placed before the generated tool description;
- `manifest.json`         the parameters and counts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from arpo_engine.config import ToolConfig
from arpo_engine.data import atomic_writer, write_jsonl
from arpo_engine.demo.sft import check_outputs, demo_row, plan, run_tools_cached
from arpo_engine.demo.task import Question, draw_questions
from arpo_engine.demo.world import build_world, corpus_rows
from arpo_engine.rollout.formats import CALL_FORMATS
from arpo_engine.tools.base import Tool

DATA_SOURCE = "arpo_demo"
CALL_FORMAT_NAMES = ("tags", "hermes")
INSTRUCTIONS = (
    "You answer questions about an invented world of towns, companies and people. You cannot know "
    "any fact about them: search for every name you need, read the matching result, then compute "
    "the answer with python and print it. The answer is a whole number."
)


def tool_configs(corpus_path: str) -> list[ToolConfig]:
    """The demo's tools. The snippet fits a whole document, so the facts are never cut off."""
    search_options = {"corpus_path": corpus_path, "top_k": 2, "snippet_chars": 300}
    return [
        ToolConfig(name="search", kind="search", options=search_options),
        ToolConfig(name="python", kind="python"),
    ]


def generate(
    out_dir: str | Path,
    *,
    seed: int = 0,
    n_entities: int = 200,
    n_train: int = 2000,
    n_eval: int = 200,
    n_sft: int = 1000,
    hops: Sequence[int] = (1, 2),
    tools: Mapping[str, Tool] | None = None,
) -> dict[str, Any]:
    """Write every demo file into `out_dir` and return the manifest (parameters and counts).

    `tools` defaults to the real tools built from `tools.json`; SFT results are what they return.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # One named stream per part, so changing e.g. n_sft leaves the corpus and train/eval unchanged.
    world = build_world(random.Random(f"{seed}:world"), n_entities)
    write_jsonl(out / "corpus.jsonl", corpus_rows(world, random.Random(f"{seed}:corpus")))
    train = draw_questions(random.Random(f"{seed}:train"), world.split("train"), n_train, hops)
    held_out = draw_questions(random.Random(f"{seed}:eval"), world.split("eval"), n_eval, hops)
    # SFT questions are new train-entity questions, so RL does not start on prompts it was shown solved.
    sft = draw_questions(
        random.Random(f"{seed}:sft"), world.split("train"), n_sft, hops, exclude={q.text for q in train}
    )
    write_jsonl(out / "train.jsonl", (q.row(DATA_SOURCE) for q in train))
    write_jsonl(out / "eval.jsonl", (q.row(DATA_SOURCE) for q in held_out))
    configs = tool_configs("corpus.jsonl")
    _write_text(out / "tools.json", json.dumps([dataclasses.asdict(c) for c in configs], indent=2) + "\n")
    _write_text(out / "instructions.txt", INSTRUCTIONS + "\n")
    if tools is None:
        tools = _build_tools(out)
    write_sft(out, sft, tools)
    manifest = _manifest(seed, n_entities, hops, train, held_out, sft)
    _write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest


def write_sft(out: Path, questions: Sequence[Question], tools: Mapping[str, Tool]) -> None:
    """Run every call once (shared by both formats), check each demonstration, write one file per format."""
    outputs = run_tools_cached(tools, (step for q in questions for step in plan(q)), workers=_workers())
    for question in questions:
        check_outputs(question, outputs)
    for name in CALL_FORMAT_NAMES:
        fmt = CALL_FORMATS[name]
        system_prompt = fmt.system_prompt(tools, INSTRUCTIONS)
        rows = (demo_row(q, outputs, fmt, tools, system_prompt) for q in questions)
        write_jsonl(out / f"sft_{name}.jsonl", rows)


def _build_tools(out: Path) -> dict[str, Tool]:
    from arpo_engine.tools.registry import build_tools  # the sandbox checks its prerequisites on build

    return dict(build_tools(tool_configs(str((out / "corpus.jsonl").resolve()))))


def _workers() -> int:
    # Each python call is a short-lived sandbox process that mostly waits on its own start-up;
    # measured on 2 cores, throughput stops improving at about 8 per core.
    return 8 * (os.cpu_count() or 1)


def _manifest(
    seed: int,
    n_entities: int,
    hops: Sequence[int],
    train: Sequence[Question],
    held_out: Sequence[Question],
    sft: Sequence[Question],
) -> dict[str, Any]:
    def counts(questions: Sequence[Question]) -> dict[str, Any]:
        return {
            "rows": len(questions),
            "by_hops": {str(h): n for h, n in sorted(Counter(q.hops for q in questions).items())},
            "by_template": dict(sorted(Counter(q.template for q in questions).items())),
        }

    return {
        "seed": seed,
        "n_entities": n_entities,
        "hops": sorted(set(hops)),
        "data_source": DATA_SOURCE,
        "train": counts(train),
        "eval": counts(held_out),
        "sft": counts(sft),
    }


def _write_text(path: Path, text: str) -> None:
    with atomic_writer(path) as fh:
        fh.write(text)
