"""Preflight (arpo_engine.preflight): a few rollouts of the starting model, its metrics and warnings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arpo_engine.config import RunConfig
from arpo_engine.preflight import preflight_warnings, run_preflight, starting_model
from arpo_engine.rollout.scripted import Reply, ScriptContext, ScriptedSampler

RIGHT = r"<think>easy</think><answer>\boxed{4}</answer>"


def _config(tmp_path: Path, *, tools: bool = True, budget: int = 400, sft: str = "") -> RunConfig:
    data = tmp_path / "train.jsonl"
    rows = [{"question": f"q{i}: what is 2+2?", "answer": "4"} for i in range(3)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = {
        "name": "pre",
        "data": {"train_path": str(data), "max_prompt_tokens": 4000},
        "model": {"max_model_len": 8192},
        "reward": {"scorer": "arpo"},
        "rollout": {"max_response_tokens": budget, "sampler": "transformers"},
        "tools": [{"name": "calculator", "kind": "calculator"}] if tools else [],
        "checkpoint": {"dir": str(tmp_path / "ckpt")},
        "sft": {"data_path": sft},
    }
    return RunConfig.from_dict(raw).validate()


def _codes(report: object) -> set[str]:
    return {w.code for w in report.warnings}  # type: ignore[attr-defined]


def test_a_model_that_never_calls_a_tool_is_warned_about(tmp_path: Path) -> None:
    report = run_preflight(_config(tmp_path), sampler=ScriptedSampler(lambda ctx: Reply(RIGHT)))
    assert report.metrics["tools/call_rate"] == 0.0
    assert "no_tool_calls" in _codes(report)
    assert "add SFT demonstrations" in next(w.message for w in report.warnings if w.code == "no_tool_calls")


def test_equal_rewards_everywhere_say_rl_has_no_signal(tmp_path: Path) -> None:
    report = run_preflight(_config(tmp_path), sampler=ScriptedSampler(lambda ctx: Reply(RIGHT)))
    assert report.metrics["reward/std"] == 0.0 and report.metrics["groups/degenerate_frac"] == 1.0
    assert "equal_rewards" in _codes(report)


def test_a_model_that_calls_tools_and_varies_gets_no_warning(tmp_path: Path) -> None:
    def script(ctx: ScriptContext) -> Reply:
        if "<result>" not in ctx.text.split("<|assistant|>")[-1]:
            return Reply("<think>compute</think><calculator>2+2</calculator>")
        return Reply(RIGHT if ctx.call % 2 else r"<think>hm</think><answer>\boxed{5}</answer>")

    report = run_preflight(_config(tmp_path), sampler=ScriptedSampler(script), prompts=2, paths=4)
    assert report.metrics["tools/call_rate"] == 1.0
    assert report.metrics["rollout/paths"] == 8.0
    assert report.metrics["format/ok_frac"] == 1.0
    assert report.metrics["reward/std"] > 0
    assert report.warnings == []
    assert report.prompt_text.startswith("<|system|>") and "q0: what is 2+2?" in report.prompt_text
    assert report.settings["branching"] is False and report.settings["paths_per_prompt"] == 4


def test_answers_cut_by_the_budget_ask_for_a_larger_budget(tmp_path: Path) -> None:
    report = run_preflight(_config(tmp_path, budget=16), sampler=ScriptedSampler(lambda ctx: Reply("x" * 100)))
    assert report.metrics["response/clip_frac"] == 1.0
    warning = next(w for w in report.warnings if w.code == "clipped")
    assert "rollout.max_response_tokens" in warning.message


def test_a_run_budget_over_the_checks_cap_is_not_blamed(tmp_path: Path) -> None:
    sampler = ScriptedSampler(lambda ctx: Reply("x" * 100))
    report = run_preflight(_config(tmp_path, budget=4096), sampler=sampler, max_response_tokens=16)
    assert "clipped" not in _codes(report) and "check_cap" in _codes(report)


def test_a_run_with_demonstrations_is_checked_before_its_sft_with_a_softer_warning(tmp_path: Path) -> None:
    demos = tmp_path / "sft.jsonl"
    demos.write_text("{}\n")
    config = _config(tmp_path, sft=str(demos))
    assert starting_model(config, "7")[2] is True
    report = run_preflight(config, run_id="7", sampler=ScriptedSampler(lambda ctx: Reply(RIGHT)))
    assert "before the run's SFT" in report.model
    assert "SFT cold start comes first" in next(w.message for w in report.warnings if w.code == "no_tool_calls")


def test_the_runs_own_sft_model_is_the_starting_model_once_it_exists(tmp_path: Path) -> None:
    demos = tmp_path / "sft.jsonl"
    demos.write_text("{}\n")
    config = _config(tmp_path, sft=str(demos))
    folder = tmp_path / "ckpt" / "run-7" / "sft-model"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert starting_model(config, "7") == (folder, "the run's SFT model", False)


@pytest.mark.parametrize(
    ("rewards", "format_ok", "hint"),
    [([-1.0] * 4, 0.0, "format"), ([1.0] * 4, 1.0, "too easy")],
)
def test_the_equal_rewards_warning_says_what_to_do(rewards: list[float], format_ok: float, hint: str) -> None:
    metrics = {"format/ok_frac": format_ok, "accuracy": format_ok, "rollout/paths": 4.0, "tools/calls_total": 1.0}
    found = preflight_warnings(
        metrics, has_tools=True, sft_pending=False, budget=64, run_budget=64, capped=False, rewards=rewards
    )
    assert [w.code for w in found] == ["equal_rewards"] and hint in found[0].message


def test_the_preflight_module_imports_without_django() -> None:
    import subprocess
    import sys

    code = "import sys, arpo_engine.preflight; assert 'django' not in sys.modules and 'celery' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
