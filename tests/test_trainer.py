"""End-to-end training on the tiny model: parameters change, checkpoints load, a killed run resumes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from arpo_engine.config import ConfigError, load_config
from arpo_engine.data import DataError
from arpo_engine.models import build_tiny_model
from arpo_engine.pipeline import run_training

ROOT = Path(__file__).resolve().parents[1]

# Rewards must differ within a group or there is no gradient; a random tiny model never writes a valid
# answer, so this (sandboxed, user-supplied) scorer rewards the response length instead.
LENGTH_SCORER = "def score(response, answers):\n    return (len(response) % 11) / 11.0\n"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def write_data(folder: Path, rows: int = 6) -> None:
    lines = [json.dumps({"question": f"What is {i} plus {i}?", "answer": str(2 * i)}) for i in range(rows)]
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "eval.jsonl").write_text("\n".join(lines[:2]) + "\n")


def write_config(folder: Path, model: Path, **overrides: object) -> Path:
    raw: dict = {
        "name": "tiny",
        "seed": 1,
        "model": {"path": str(model), "max_model_len": 1024},
        "data": {"train_path": "train.jsonl", "eval_path": "eval.jsonl", "max_prompt_tokens": 512},
        "tools": [{"name": "calculator", "kind": "calculator"}],
        "rollout": {
            "sampler": "transformers",
            "group_size": 4,
            "initial_samples": 2,
            "max_response_tokens": 12,
            "max_tool_calls": 1,
        },
        "reward": {"scorer": "python", "python_source": LENGTH_SCORER, "timeout_s": 10},
        "optim": {"lr": 1e-3, "train_batch_prompts": 2, "mini_batch_prompts": 1, "micro_batch_tokens": 2048},
        "checkpoint": {"dir": str(folder / "runs"), "every_steps": 1, "keep_last": 10},
        "train": {"steps": 2, "eval_every": 2, "eval_prompts": 2},
    }
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if field:
            raw.setdefault(section, {})[field] = value
        else:
            raw[section] = value
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_two_training_steps_change_parameters_and_the_checkpoint_loads(tmp_path, tiny_dir):
    from transformers import AutoModelForCausalLM

    write_data(tmp_path)
    config = load_config(write_config(tmp_path, tiny_dir))
    history: list[tuple[int, dict]] = []
    order: list[tuple[str, object]] = []

    def sink(step: int, metrics: dict) -> None:
        history.append((step, metrics))
        order.append(("step", step))

    result = run_training(config, log=lambda _: None, sink=sink, on_phase=lambda phase: order.append(("phase", phase)))
    assert result.steps_done == 2
    # the dashboard's phase: the eval of the starting model, each step's training, the eval at the last step
    assert order == [("phase", "evaluating"), ("step", 0), ("phase", "training"), ("step", 1),
                     ("phase", "training"), ("phase", "evaluating"), ("step", 2)]  # fmt: skip
    step_metrics = [m for step, m in history if step > 0]
    for key in ("reward/mean", "groups/degenerate_frac", "loss/policy", "grad/norm", "entropy/initial_mean",
                "branch/forks", "tools/calls_per_traj", "time/rollout_s", "time/update_s", "eval/accuracy"):
        assert key in step_metrics[-1], key
    assert any(m["train/sequences"] > 0 for m in step_metrics)

    run_dir = tmp_path / "runs" / "run-tiny"
    latest = (run_dir / "latest").resolve()
    assert latest.name == "step-2"
    before = load_file(str(tiny_dir / "model.safetensors"))
    after = load_file(str(latest / "model.safetensors"))
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "no parameter changed in two steps"
    reloaded = AutoModelForCausalLM.from_pretrained(latest)
    assert reloaded.config.vocab_size == AutoModelForCausalLM.from_pretrained(tiny_dir).config.vocab_size


def test_stop_flag_ends_training_between_phases(tmp_path, tiny_dir):
    write_data(tmp_path)
    config = load_config(write_config(tmp_path, tiny_dir, train__steps=5, train__eval_every=0))
    steps: list[int] = []
    result = run_training(
        config, log=lambda _: None, sink=lambda step, m: steps.append(step), should_stop=lambda: len(steps) >= 1
    )
    assert result.stopped and result.steps_done == 1


def test_unknown_config_key_is_reported_before_anything_loads(tmp_path, tiny_dir):
    write_data(tmp_path)
    path = write_config(tmp_path, tiny_dir, rollout={"group_sizes": 4})
    with pytest.raises(ConfigError, match=r"rollout\.group_sizes"):
        load_config(path)


def test_initial_samples_above_budget_is_a_config_error(tmp_path, tiny_dir):
    write_data(tmp_path)
    path = write_config(tmp_path, tiny_dir, rollout={"group_size": 2, "initial_samples": 4})
    with pytest.raises(ConfigError, match="initial_samples"):
        load_config(path)


def test_rows_without_answers_are_reported_by_line(tmp_path, tiny_dir):
    write_data(tmp_path)
    (tmp_path / "train.jsonl").write_text('{"question": "a?", "answer": "1"}\n{"question": "b?"}\n')
    config = load_config(write_config(tmp_path, tiny_dir))
    with pytest.raises(DataError, match="line 2"):
        run_training(config, log=lambda _: None)


def test_prompt_longer_than_the_budget_is_reported_by_line(tmp_path, tiny_dir):
    write_data(tmp_path)
    long_row = json.dumps({"question": "word " * 600, "answer": "1"})
    (tmp_path / "train.jsonl").write_text(json.dumps({"question": "ok?", "answer": "1"}) + "\n" + long_row + "\n")
    config = load_config(write_config(tmp_path, tiny_dir))
    with pytest.raises(DataError, match=r"line 2: the prompt has \d+ tokens"):
        run_training(config, log=lambda _: None)


def test_a_row_asking_for_an_undefined_tool_is_reported(tmp_path, tiny_dir):
    write_data(tmp_path)
    row = {"question": "a?", "answer": "1", "tools": ["web_browser"]}
    (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n")
    config = load_config(write_config(tmp_path, tiny_dir))
    with pytest.raises(DataError, match="web_browser"):
        run_training(config, log=lambda _: None)


def _train_cmd(config: Path, metrics: Path) -> list[str]:
    return [sys.executable, "-m", "arpo_engine", "train", str(config), "--metrics", str(metrics)]


def test_killed_run_resumes_from_its_last_checkpoint_and_matches_an_uninterrupted_run(tmp_path, tiny_dir):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    steps = 4
    weights = {}
    for mode in ("straight", "killed"):
        folder = tmp_path / mode
        folder.mkdir()
        write_data(folder)
        config = write_config(folder, tiny_dir, train__steps=steps, train__eval_every=0)
        metrics = folder / "metrics.jsonl"
        if mode == "killed":
            proc = subprocess.Popen(_train_cmd(config, metrics), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            marker = folder / "runs" / "run-tiny" / "resume" / "step-2" / "COMPLETE.json"
            deadline = time.monotonic() + 300
            while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert marker.exists(), "the run never reached its step-2 checkpoint"
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            done_before = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
            assert max(done_before) < steps, "the run finished before it could be killed"
        subprocess.run(_train_cmd(config, metrics), cwd=ROOT, env=env, check=True, capture_output=True)
        logged = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
        assert logged[-1] == steps
        latest = (folder / "runs" / "run-tiny" / "latest").resolve()
        assert latest.name == f"step-{steps}"
        weights[mode] = load_file(str(latest / "model.safetensors"))
    for name, tensor in weights["straight"].items():
        assert torch.equal(tensor, weights["killed"][name]), f"{name} differs after resume"


@pytest.mark.slow
def test_one_step_with_the_vllm_sampler_pushes_new_weights_into_the_running_engine(tmp_path, tiny_dir):
    write_data(tmp_path)
    config = load_config(write_config(tmp_path, tiny_dir, train__steps=2, train__eval_every=2,
                                      rollout={"sampler": "vllm", "group_size": 4, "initial_samples": 2,
                                               "max_response_tokens": 12, "max_tool_calls": 1,
                                               "memory_fraction": 0.05}))
    history: list[dict] = []
    result = run_training(config, log=lambda _: None, sink=lambda step, m: history.append(m))
    assert result.steps_done == 2
    assert history[-1]["train/sequences"] > 0
    # vLLM's cache and weights were freed for each update and came back for the next rollout and the eval
    steps = [m for m in history if "train/sequences" in m]  # the first entry is the evaluation at start
    assert len(steps) == 2 and all(m["memory/sampler_released_mb"] > 0 for m in steps)
    assert steps[1]["rollout/paths"] > 0 and "eval/accuracy" in steps[1]
    # every tensor of the learner's state dict went into the running vLLM engine
    from transformers import AutoModelForCausalLM

    assert history[-1]["sync/tensors"] == len(AutoModelForCausalLM.from_pretrained(tiny_dir).state_dict())
    assert history[-1]["entropy/token_mean"] > 0


def test_rerunning_a_finished_run_resumes_and_restart_trains_it_again(tmp_path, tiny_dir):
    write_data(tmp_path)
    config = write_config(tmp_path, tiny_dir, train__steps=1, train__eval_every=0)
    metrics = tmp_path / "metrics.jsonl"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def steps_logged() -> list[int]:
        return [json.loads(line)["step"] for line in metrics.read_text().splitlines()]

    subprocess.run(_train_cmd(config, metrics), cwd=ROOT, env=env, check=True, capture_output=True)
    assert steps_logged() == [1]
    again = subprocess.run(_train_cmd(config, metrics), cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    assert steps_logged() == [1], "a finished run trained again instead of resuming"
    assert "resuming from" in again.stdout + again.stderr
    restarted = subprocess.run([*_train_cmd(config, metrics), "--restart"], cwd=ROOT, env=env, check=True,
                               capture_output=True, text=True)
    assert steps_logged() == [1, 1]
    assert "removed the earlier checkpoints" in restarted.stdout
    assert "the trained model:" in restarted.stdout


def test_eval_cli_scores_each_held_out_prompt_once_and_writes_the_trajectories(tmp_path, tiny_dir):
    write_data(tmp_path)
    # an evaluation-only config: no training split at all
    config = write_config(tmp_path, tiny_dir, data={"eval_path": "eval.jsonl", "max_prompt_tokens": 512})
    out = tmp_path / "eval.json"
    done = subprocess.run(
        [sys.executable, "-m", "arpo_engine", "eval", str(config), "--prompts", "2", "--json", str(out)],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    payload = json.loads(out.read_text())
    assert len(payload["groups"]) == 2
    assert all(len(g["paths"]) == 1 for g in payload["groups"])  # greedy, unbranched
    assert set(payload["metrics"]) >= {"eval/accuracy", "eval/reward_mean", "eval/tool_calls_per_traj"}
    assert f"eval/accuracy: {payload['metrics']['eval/accuracy']:.4g}" in done.stdout


def test_eval_cli_without_an_eval_split_is_a_config_error(tmp_path, tiny_dir):
    write_data(tmp_path)
    config = write_config(tmp_path, tiny_dir, data={"train_path": "train.jsonl", "max_prompt_tokens": 512})
    done = subprocess.run([sys.executable, "-m", "arpo_engine", "eval", str(config)], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 2
    assert "data.eval_path must name the held-out prompt file" in done.stderr
