"""SFT cold-start demonstrations for the demo task: correct tool-use trajectories (ARPO_SPEC.md §5).

A demonstration searches each entity by name, states the facts it read, runs the arithmetic in
Python and answers `<answer>The answer is \\boxed{X}</answer>`. Calls and results are rendered by
the run's call format, and every result is what the real tool returned, so the model is fine-tuned
on exactly the text the rollout loop will show it. The whole trajectory is one assistant message
(our loop appends results inside the assistant turn); `spans` mark the result ranges so SFT can
mask them like RL does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from arpo_engine.demo.task import Fact, Question
from arpo_engine.demo.world import ATTRIBUTE_NOUNS, FACT_PHRASES, Entity
from arpo_engine.rollout.formats import CallFormat
from arpo_engine.tools.base import Tool, ToolCall


class DemoError(RuntimeError):
    """A demonstration would be wrong (a tool did not return the facts it needs); never written."""


@dataclass(frozen=True)
class Step:
    thought: str
    tool: str
    argument: str
    """The tool's primary argument: the search query or the Python code."""


def plan(question: Question) -> list[Step]:
    """The tool calls a careful agent makes: one search per entity, then one Python run."""
    names = [e.name for e in question.entities]
    steps = [Step(_search_thought(question, i), "search", name) for i, name in enumerate(names)]
    steps.append(Step(_compute_thought(question), "python", question.code))
    return steps


def _needs(question: Question, entity: Entity) -> str:
    nouns = [ATTRIBUTE_NOUNS[f.attribute] for f in question.facts if f.entity == entity.name]
    return " and the ".join(dict.fromkeys(nouns))


def _search_thought(question: Question, index: int) -> str:
    entity = question.entities[index]
    lead = "" if index == 0 else _read_facts(question.facts, question.entities[index - 1]) + " "
    return f"{lead}I need the {_needs(question, entity)} of {entity.name}."


def _compute_thought(question: Question) -> str:
    read = _read_facts(question.facts, question.entities[-1])
    return f"{read} Now I compute the answer with Python."


def _read_facts(facts: Iterable[Fact], entity: Entity) -> str:
    seen = dict.fromkeys((f.attribute, f.value) for f in facts if f.entity == entity.name)
    return " ".join(FACT_PHRASES[a].format(name=entity.name, v=v) for a, v in seen)


# --- running the tools ---------------------------------------------------------------------------


def run_tools_cached(
    tools: Mapping[str, Tool], steps: Iterable[Step], *, workers: int = 8
) -> dict[tuple[str, str], str]:
    """Outputs of every distinct call, run concurrently (each python call is a separate sandbox)."""
    calls = sorted({(s.tool, s.argument) for s in steps})

    def call(key: tuple[str, str]) -> str:
        name, argument = key
        tool = tools[name]
        result = tool.run({tool.primary_argument: argument})
        if result.error is not None:
            raise DemoError(f"{name}({argument!r}) failed ({result.error}): {result.output[:300]}")
        return result.output

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return dict(zip(calls, pool.map(call, calls), strict=True))


def check_outputs(question: Question, outputs: Mapping[tuple[str, str], str]) -> None:
    """Refuse a demonstration whose search results lack a needed fact or whose Python printed otherwise."""
    for fact in question.facts:
        found = outputs[("search", fact.entity)]
        # The entity's own snippet ("2. Velmora: …"), not a neighbour's that merely mentions it.
        own = re.search(rf"^\d+\. {re.escape(fact.entity)}: (.*)$", found, re.MULTILINE)
        if own is None or not re.search(rf"(?<!\d){fact.value}(?!\d)", own.group(1)):
            raise DemoError(f"search for {fact.entity!r} did not return its {fact.attribute} ({fact.value})")
    printed = outputs[("python", question.code)].strip()
    if printed != str(question.answer):
        raise DemoError(f"{question.code} printed {printed!r}, expected {question.answer}")


# --- rendering -----------------------------------------------------------------------------------


def render_trajectory(
    question: Question,
    steps: list[Step],
    outputs: Mapping[tuple[str, str], str],
    fmt: CallFormat,
    tools: Mapping[str, Tool],
) -> tuple[str, list[list[int]]]:
    """The assistant text and the [start, end) character spans of its tool results."""
    text = ""
    spans: list[list[int]] = []
    for step in steps:
        text += _separator(text) + f"<think>{step.thought}</think>\n"
        call = ToolCall(name=step.tool, arguments={tools[step.tool].primary_argument: step.argument})
        text += fmt.render_call(call, tools)
        result = fmt.render_result(outputs[(step.tool, step.argument)])
        spans.append([len(text), len(text) + len(result)])
        text += result
    text += _separator(text) + f"<think>The result is {question.answer}.</think>\n"
    text += f"<answer>The answer is \\boxed{{{question.answer}}}</answer>"
    return text, spans


def _separator(text: str) -> str:
    # The tags format's result ends at "</result>", Hermes' with a newline: the model's next
    # segment starts on a new line either way, as a model continuing after a result would.
    return "" if not text or text.endswith("\n") else "\n"


def demo_row(
    question: Question,
    outputs: Mapping[tuple[str, str], str],
    fmt: CallFormat,
    tools: Mapping[str, Tool],
    system_prompt: str,
) -> dict[str, Any]:
    """One SFT row: {"messages": [system, user, assistant], "spans", "answer", "template", "hops", …}."""
    text, spans = render_trajectory(question, plan(question), outputs, fmt, tools)
    return {
        "messages": [
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": question.text},
            {"role": "assistant", "content": text},
        ],
        "spans": spans,
        "answer": str(question.answer),
        "template": question.template,
        "hops": question.hops,
        "constant": question.constant,
        "call_format": fmt.name,
    }
