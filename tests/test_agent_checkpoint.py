"""A checkpoint step folder is a usable agent: agent.json, a model card that names its base, no machine paths,
and `python -m arpo_engine agent <folder> "question"` runs the agent loop with the checkpoint's tools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from arpo_engine.agent_spec import run_agent
from arpo_engine.config import load_config
from arpo_engine.models import REPO_ROOT, base_model_name, build_tiny_model
from arpo_engine.pipeline import run_training
from arpo_engine.rollout.scripted import Reply, ScriptContext, ScriptedSampler
from tests.test_trainer import write_config, write_data

TOOLS = [{"name": "python", "kind": "python"}, {"name": "calculator", "kind": "calculator"}]


@pytest.fixture(scope="module")
def step_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One training step of the tiny model with a python and a calculator tool, in the hermes format."""
    work = tmp_path_factory.mktemp("agent")
    tiny = build_tiny_model(work / "tiny-base", seed=0)
    write_data(work)
    path = write_config(
        work, tiny, tools=TOOLS, train={"steps": 1, "eval_every": 0}, system_prompt="Be brief.",
        rollout={"sampler": "transformers", "group_size": 2, "initial_samples": 2, "max_response_tokens": 12,
                 "max_tool_calls": 2, "call_format": "hermes"},
    )  # fmt: skip
    run_training(load_config(path), log=lambda _: None)
    return (work / "runs" / "run-tiny" / "latest").resolve()


def test_every_step_folder_carries_agent_json_with_prompt_tools_format_stops_and_limits(step_folder: Path) -> None:
    agent = json.loads((step_folder / "agent.json").read_text())
    assert agent["system_prompt"].startswith("Be brief.") and "<tools>" in agent["system_prompt"]
    assert [(t["name"], t["kind"]) for t in agent["tools"]] == [("python", "python"), ("calculator", "calculator")]
    assert agent["tools"][0]["schema"]["function"]["name"] == "python"
    assert agent["call_format"]["name"] == "hermes" and "<tool_response>" in agent["call_format"]["result_before"]
    assert agent["stop_sequences"] == ["</tool_call>"]
    assert agent["limits"]["max_tool_calls"] == 2 and agent["limits"]["max_response_tokens"] == 12


def test_no_file_in_the_step_folder_names_a_path_of_the_machine(step_folder: Path) -> None:
    machine_paths = {str(step_folder.parents[2]), str(REPO_ROOT), "/tmp/", str(Path.home()) + "/"}
    for f in step_folder.iterdir():
        data = f.read_bytes()
        for path in machine_paths:
            assert path.encode() not in data, f"{f.name} contains {path}"


def test_the_model_card_names_the_base_model_and_shows_how_to_run_the_agent(step_folder: Path) -> None:
    card = (step_folder / "README.md").read_text()
    assert 'base_model: "tiny-base"' in card
    assert json.loads((step_folder / "run.json").read_text())["base_model"] == "tiny-base"
    assert "python -m arpo_engine agent" in card and "agent.json" in card


def test_a_bundled_base_model_is_named_by_its_hub_name() -> None:
    assert base_model_name("smollm2-135m") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_the_agent_runs_the_checkpoints_tools_sandboxed_and_returns_its_trajectory(
    step_folder: Path, tmp_path: Path
) -> None:
    # the scripted "model" spends a token per character: give it room, everything else as saved
    agent = json.loads((step_folder / "agent.json").read_text())
    agent["limits"].update(max_model_len=8000, max_response_tokens=2000)
    (tmp_path / "agent.json").write_text(json.dumps(agent))

    def script(ctx: ScriptContext) -> Reply:
        if "<tool_response>" not in ctx.text.split("<|assistant|>", 1)[1]:
            call = {"name": "python", "arguments": {"code": "import os; print(6 * 7, os.getcwd())"}}
            return Reply(f"<think>compute</think><tool_call>{json.dumps(call)}</tool_call>")
        return Reply("<answer>\\boxed{42}</answer>")

    group = run_agent(tmp_path, "What is 6 times 7?", sampler=ScriptedSampler(script))
    path = group.paths[0]
    assert "Be brief." in group.prompt_text and "<tools>" in group.prompt_text
    assert [c.name for c in path.tool_calls] == ["python"]
    output = path.tool_calls[0].output
    assert output.startswith("42 ") and str(REPO_ROOT) not in output  # ran in the sandbox's scratch dir
    assert path.text.endswith("<answer>\\boxed{42}</answer>")


def test_the_agent_command_prints_the_trajectory_of_a_trained_tiny_model(step_folder: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [sys.executable, "-m", "arpo_engine", "agent", str(step_folder), "What is 2 plus 2?"],
        capture_output=True, text=True, timeout=300, env=env, cwd=REPO_ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "What is 2 plus 2?" in done.stdout and "path 0" in done.stdout and "trajectory:" in done.stdout
