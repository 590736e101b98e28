"""ARPO rollout trees recorded on the demo task's prompts, for the tree-packed learner's tests and bench.

The agent loop runs for real (entropy branching, forks at tool boundaries, supplements) on the demo
questions, driven by a scripted sampler whose writing and entropies come from each request's seed, so
every path differs and the trees have the shapes ARPO produces: N initial paths, forks that repeat their
parent up to a tool result, up to M paths per prompt. Tokens are characters (ids < 256).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from arpo_engine.advantages import attribute_advantages
from arpo_engine.config import RunConfig
from arpo_engine.learner import TrainSequence
from arpo_engine.rollout.agent import RolloutDeps, run_rollouts
from arpo_engine.rollout.formats import get_format
from arpo_engine.rollout.scripted import Reply, ScriptContext, ScriptedSampler
from arpo_engine.rollout.types import RolloutGroup
from arpo_engine.tools.base import ToolResult, function_schema

DEMO_EVAL = Path(__file__).resolve().parents[1] / "var" / "demo" / "eval.jsonl"
WORDS = ["the", "town", "of", "company", "people", "founded", "year", "population", "search", "compute", "answer", "first", "then"]


class EchoTool:
    name = "search"
    primary_argument = "query"

    def schema(self) -> dict[str, Any]:
        return function_schema("search", "Look a name up.", {"query": {"type": "string"}}, ["query"])

    def run(self, arguments: Mapping[str, Any]) -> ToolResult:
        query = str(arguments["query"])
        return ToolResult(output=f"{query}: founded 1897, population 112510, staff 20453. " * 2)


class Question:
    def __init__(self, question: str) -> None:
        self.messages = [{"role": "user", "content": question}]


def demo_questions(n: int) -> list[Question]:
    if DEMO_EVAL.is_file():
        rows = [json.loads(line) for line in DEMO_EVAL.read_text().splitlines()[:n]]
        return [Question(r["question"]) for r in rows]
    return [Question(f"How old will person {i} be in the year 2054?") for i in range(n)]


def _script(words: int) -> Any:
    def script(ctx: ScriptContext) -> Reply:
        rng = random.Random(ctx.request.seed)
        done = ctx.text.split("<|assistant|>", 1)[1].count("<result>")
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(words // 2, words)))
        entropy = [rng.uniform(0.2, 4.0)] * 5
        if done < 2 or (done < 3 and rng.random() < 0.5):
            return Reply(f"<think>{text}</think><search>{rng.choice(WORDS)} {done}</search>", entropy)
        return Reply(f"<think>{text}</think><answer>\\boxed{{{rng.randint(0, 99)}}}</answer>", entropy)

    return script


def record_trees(
    prompts: int, *, group_size: int = 8, initial: int = 4, branching: bool = True, words: int = 40, seed: int = 0
) -> list[RolloutGroup]:
    raw: dict[str, Any] = {
        "data": {"max_prompt_tokens": 4000},
        "model": {"max_model_len": 16000},
        "rollout": {"group_size": group_size, "initial_samples": initial if branching else group_size,
                    "max_tool_calls": 3, "max_response_tokens": 8000},
        "branching": {"enabled": branching, "entropy_window": 5},
        "system_prompt": "You answer questions about an invented world. Search for every name, then compute.",
    }  # fmt: skip
    config = RunConfig.from_dict(raw).validate()
    sampler = ScriptedSampler(_script(words), vocab_size=256, schedule="tokens")
    deps = RolloutDeps(sampler, {"search": EchoTool()}, get_format("tags"), random.Random(seed))
    return run_rollouts(demo_questions(prompts), config, deps).groups


def train_sequences(groups: list[RolloutGroup], *, estimator: str = "soft", seed: int = 0) -> list[TrainSequence]:
    """Random rewards per path, advantages by `estimator`, one TrainSequence per path."""
    rng = random.Random(seed)
    out = []
    for g in groups:
        rewards = [rng.choice([-1.0, 0.0, 0.5, 1.0]) for _ in g.paths]
        adv = attribute_advantages(g, rewards, estimator=estimator)
        for path, token_adv in zip(g.paths, adv.token_advantages, strict=True):
            out.append(TrainSequence(g.prompt_index, g.prompt_ids, path.token_ids, path.mask, token_adv))
    return out
