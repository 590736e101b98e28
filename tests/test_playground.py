"""The playground's answer loop (arpo_engine/playground.py): events in order, chunks that add up to the
model's text with call markup held back, tool calls and results set apart, the wall-clock cap, the run's
limits, and the per-process sampler cache. A scripted sampler says what the "model" writes; one test
answers with the tiny model through the real transformers sampler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arpo_engine.agent_spec import build_agent_spec
from arpo_engine.config import RunConfig
from arpo_engine.playground import (
    Limits,
    SamplerCache,
    answer_question,
    call_markers,
    segment_text,
    streaming_text,
)
from arpo_engine.rollout.formats import get_format
from arpo_engine.rollout.sampler import GenResult
from arpo_engine.rollout.scripted import Reply, ScriptContext, ScriptedSampler
from arpo_engine.tools.registry import build_tools

LIMITS = Limits(max_response_tokens=400, max_tool_calls=2, wall_s=60, chunk_s=0.1)


def _setup(call_format: str = "tags", tokenizer: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    config = RunConfig.from_dict(
        {"tools": [{"name": "calculator", "kind": "calculator"}], "rollout": {"call_format": call_format},
         "system_prompt": "Be brief."}
    )  # fmt: skip
    tools = build_tools(config.tools)
    return build_agent_spec(config, tools, get_format(call_format, tokenizer)), tools


class Clock:
    """A clock that moves `tick` seconds each time it is read."""

    def __init__(self, tick: float = 0.04) -> None:
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


class TokenSampler(ScriptedSampler):
    """The scripted sampler with the transformers sampler's per-token hook, called for each token it returns."""

    on_token: Any = None

    def step(self) -> list[tuple[str, GenResult]]:
        finished = super().step()
        for _, result in finished:
            for token in result.token_ids:
                if self.on_token is not None:
                    self.on_token(None, token)
        return finished


def calculator_then_answer(ctx: ScriptContext) -> Reply:
    if ctx.call == 0:
        return Reply("<think>I add them.</think> <calculator>17 + 25</calculator>")
    return Reply("<think>It is 42.</think> <answer>\\boxed{42}</answer>")


def _answer(sampler: Any, question: str = "What is 17 + 25?", **kwargs: Any) -> tuple[Any, list[tuple[str, Any]]]:
    spec, tools = _setup()
    events: list[tuple[str, dict[str, Any]]] = []
    options = {"limits": LIMITS, "clock": Clock(), **kwargs}
    final = answer_question(question, sampler=sampler, spec=spec, tools=tools, emit=lambda k, d: events.append((k, d)),
                            **options)  # fmt: skip
    return final, events


def _model_text(events: list[tuple[str, Any]], upto: str | None = None) -> str:
    text = ""
    for kind, data in events:
        if kind == upto:
            break
        if kind == "model":
            text += data["text"]
    return text


def test_call_markers_come_from_the_formats_stop_strings() -> None:
    assert call_markers(("</tool_call>",)) == ("<tool_call>",)
    assert call_markers(("</python>", "</search>", "\n")) == ("<python>", "<search>")


def test_streaming_text_holds_back_call_markup_a_partial_marker_and_half_a_character() -> None:
    markers = ("<tool_call>",)
    assert streaming_text("Let me look. <tool_call>{", markers) == "Let me look. "
    assert streaming_text("Let me look. <tool_c", markers) == "Let me look. "
    assert streaming_text("Let me look. <", markers) == "Let me look. "
    assert streaming_text("a < b", markers) == "a < b"
    assert streaming_text("café\ufffd", markers) == "café"


def test_segment_text_cuts_at_the_call_that_ends_the_segment_only() -> None:
    markers = ("<python>",)
    text = "I use <python> tags. <python>print(1)</python>"
    assert segment_text(text, "<python>print(1)</python>", markers) == "I use <python> tags. "
    assert segment_text(text, None, markers) == text


def test_events_come_in_order_with_the_call_and_its_result_set_apart() -> None:
    final, events = _answer(TokenSampler(calculator_then_answer))
    kinds = [k for k, _ in events]
    assert kinds.index("tool_call") < kinds.index("tool_result") < kinds.index("final") == len(kinds) - 1
    call = next(d for k, d in events if k == "tool_call")
    assert call == {"index": 1, "name": "calculator", "arguments": {"expression": "17 + 25"},
                    "raw": "<calculator>17 + 25</calculator>", "error": None}  # fmt: skip
    result = next(d for k, d in events if k == "tool_result")
    assert result["output"] == "42" and result["error"] is None and result["name"] == "calculator"
    assert _model_text(events, upto="tool_call") == "<think>I add them.</think> "
    assert "<calculator>" not in _model_text(events)
    assert final is not None and final["answer"] == "42" and final["tool_calls"] == 1
    assert final["finish_reason"] == "eos" and events[-1] == ("final", final)


def test_model_text_streams_in_several_chunks_that_add_up_to_the_answer() -> None:
    _, events = _answer(TokenSampler(calculator_then_answer))
    chunks = [d["text"] for k, d in events if k == "model"]
    assert len(chunks) > 4  # a chunk per ~0.1 s while tokens come every 0.04-0.08 s
    assert _model_text(events) == "<think>I add them.</think> <think>It is 42.</think> <answer>\\boxed{42}</answer>"


def test_a_sampler_without_the_token_hook_still_gives_every_word_per_segment() -> None:
    _, events = _answer(ScriptedSampler(calculator_then_answer))
    assert [k for k, _ in events] == ["model", "tool_call", "tool_result", "model", "final"]


def test_the_wall_clock_cap_stops_the_answer_with_an_error_and_keeps_what_came_before() -> None:
    def rambles(ctx: ScriptContext) -> Reply:
        return Reply("blah " * 60)

    final, events = _answer(TokenSampler(rambles), limits=Limits(400, 2, wall_s=3.0, chunk_s=0.1))
    assert final is None
    assert events[-1][0] == "error" and events[-1][1]["code"] == "time_cap"
    assert "3 s" in events[-1][1]["message"]
    assert _model_text(events).startswith("blah blah")


def test_a_call_past_max_tool_calls_is_not_run_and_its_markup_is_not_shown() -> None:
    def calls_forever(ctx: ScriptContext) -> Reply:
        return Reply("again <calculator>1 + 1</calculator>")

    final, events = _answer(TokenSampler(calls_forever), limits=Limits(400, 1, wall_s=60))
    assert [k for k, _ in events if k.startswith("tool")] == ["tool_call", "tool_result"]
    assert final is not None and final["finish_reason"] == "call_limit" and final["tool_calls"] == 1
    assert _model_text(events) == "again again "


def test_the_response_budget_is_the_runs() -> None:
    final, _ = _answer(TokenSampler(lambda ctx: Reply("x" * 500)), limits=Limits(30, 1, wall_s=60))
    assert final is not None and final["finish_reason"] == "length" and final["tokens"] == 30


def test_the_tiny_model_answers_through_the_transformers_sampler_in_chunks(tiny_model_dir: Path) -> None:
    from arpo_engine.rollout.hf_sampler import TransformersSampler

    sampler = TransformersSampler(tiny_model_dir)
    spec, tools = _setup("hermes", sampler.tokenizer)
    events: list[tuple[str, dict[str, Any]]] = []
    final = answer_question("What is 2 + 2?", sampler=sampler, spec=spec, tools=tools, emit=lambda k, d: events.append((k, d)),
                            limits=Limits(24, 1, wall_s=60, chunk_s=0.0))  # fmt: skip
    assert final is not None and 0 < final["tokens"] <= 24
    assert sum(1 for k, _ in events if k == "model") > 1
    assert sampler.on_token is None  # the hook is handed back


class FakeSampler:
    def __init__(self, path: Path) -> None:
        self.path, self.closed = path, False

    def close(self) -> None:
        self.closed = True


def test_the_sampler_cache_keeps_the_last_two_models_and_closes_the_one_it_drops(tmp_path: Path) -> None:
    folders = []
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
        folders.append(tmp_path / name)
    loads: list[str] = []

    def load(path: Path, **kwargs: Any) -> FakeSampler:
        loads.append(path.name)
        return FakeSampler(path)

    cache = SamplerCache(2, load=load)
    a, loaded = cache.get(folders[0])
    assert loaded and cache.get(folders[0]) == (a, False)
    cache.get(folders[1])
    cache.get(folders[0])  # a is the most recent now: b goes when c comes
    b = cache.get(folders[1])[0]
    cache.get(folders[2])
    assert loads == ["a", "b", "c"] and len(cache) == 2
    assert a.closed and not b.closed


def test_a_folder_saved_again_is_loaded_again(tmp_path: Path) -> None:
    import os

    (tmp_path / "config.json").write_text("{}")
    cache = SamplerCache(2, load=lambda path, **kw: FakeSampler(path))
    first, _ = cache.get(tmp_path)
    os.utime(tmp_path / "config.json", ns=(1, 1))
    second, loaded = cache.get(tmp_path)
    assert loaded and second is not first and first.closed and len(cache) == 1
