"""The whole loop on the real SmolLM2-135M (after the demo SFT cold start) through vLLM on the CPU."""

import random
from pathlib import Path

import bm25s  # noqa: F401  (imported first on purpose: it loads llvmlite, whose proxy once broke vLLM's start)
import pytest

from arpo_engine.config import RunConfig, load_config
from arpo_engine.data import load_samples
from arpo_engine.rollout.agent import RolloutDeps, run_rollouts
from arpo_engine.rollout.factory import make_sampler
from arpo_engine.rollout.formats import get_format
from arpo_engine.rollout.render import format_group
from arpo_engine.tools.registry import build_tools

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "demo_rollout.yaml"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_config() -> RunConfig:
    sft_model = ROOT / "var" / "models" / "smollm2-135m-demo-sft" / "config.json"
    assert sft_model.is_file(), "the demo SFT model is missing: run `make model-sft` (make test does)"
    raw = load_config(CONFIG).to_dict()
    raw["rollout"].update(group_size=4, initial_samples=2, max_response_tokens=384)
    return RunConfig.from_dict(raw).validate()


def test_real_model_completes_tool_calls_through_vllm_and_the_tree_is_consistent(demo_config):
    samples = load_samples(demo_config.data.eval_path)[:2]
    tools = build_tools(demo_config.tools)
    sampler = make_sampler(demo_config.model, demo_config.rollout, seed=0)
    try:
        assert sampler.entropy_estimator == "topk-10"
        deps = RolloutDeps(sampler, tools, get_format("tags"), random.Random(0))
        batch = run_rollouts(samples, demo_config, deps)
    finally:
        sampler.close()

    for group in batch.groups:
        print(format_group(group))
    calls = [c for g in batch.groups for p in g.paths for c in p.tool_calls]
    completed = [c for c in calls if c.error is None and c.name in tools]
    assert completed, "the real model completed no tool call"
    for group in batch.groups:
        assert 1 <= len(group.paths) <= group.budget
        for path in group.paths:
            assert len(path.token_ids) == len(path.mask) == len(path.entropies)
            assert len(path.token_ids) <= demo_config.rollout.max_response_tokens
            for call in path.tool_calls:
                span = path.token_ids[call.result_start : call.result_end]
                assert set(path.mask[call.result_start : call.result_end]) == {0}
                assert "<result>" in sampler.tokenizer.decode(span)
            model_positions = [i for i, m in enumerate(path.mask) if m == 1]
            assert all(path.entropies[i] is not None and path.entropies[i] >= 0 for i in model_positions)
            if path.parent is not None:
                parent = group.paths[path.parent]
                assert path.token_ids[: path.fork_boundary] == parent.token_ids[: path.fork_boundary]
    m = batch.metrics
    assert m["tools/calls_total"] > 0
    assert m["throughput/rollout_tok_s"] > 0
    assert m["entropy/initial_mean"] > 0
