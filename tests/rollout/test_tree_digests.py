"""The rollout samples what it sampled before its scheduling was made faster.

`tree_digests.json` holds, per case, a digest of the trees (every path's tokens, masks, entropies, tool
calls, branch decisions and lineage) and of the metrics that describe them, recorded with the agent loop
as it was before supplements started early and branch decisions were taken on streamed entropy windows
(supplements then started only once every other path of the prompt had ended, decisions only at the end
of a segment). Only wall-clock numbers, sampler steps and `rollout/rounds` (the logical chain of segments,
which early starts shorten on purpose) are left out. Every schedule of the scripted sampler must give the
recorded trees.

Re-record only for a change that is meant to change what is sampled: `python -m tests.rollout.test_tree_digests`.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from arpo_engine.rollout.agent import RolloutDeps, run_rollouts
from arpo_engine.rollout.formats import get_format
from arpo_engine.rollout.scripted import ScriptedSampler
from tests.rollout.test_agent import VOCAB, Sample, config
from tests.rollout.test_scheduling import JitteryUpperTool, rollout, seeded_script

DIGESTS = Path(__file__).with_name("tree_digests.json")
SCHEDULES = [("batch", 0), ("tokens", 0), ("lifo", 0), ("random", 1)]
SEEDS = range(4)

CASES: dict[str, dict[str, Any]] = {
    "paper: M=8, N=4, Z=2, 3 calls": {
        "rollout": {"group_size": 8, "initial_samples": 4, "max_tool_calls": 3},
        "branching": {"rule": "stochastic"},
    },
    "single call: M=8, N=4": {
        "rollout": {"group_size": 8, "initial_samples": 4, "max_tool_calls": 1},
        "branching": {"rule": "stochastic"},
    },
    "rare forks, many supplements: M=8, N=1, 2 calls": {
        "rollout": {"group_size": 8, "initial_samples": 1, "max_tool_calls": 2},
        "branching": {"rule": "stochastic", "alpha": 0.3},
    },
    "contended: M=6, N=2, Z=3": {
        "rollout": {"group_size": 6, "initial_samples": 2, "max_tool_calls": 3},
        "branching": {"rule": "stochastic", "beam_width": 3},
    },
    "threshold rule": {
        "rollout": {"group_size": 6, "initial_samples": 2, "max_tool_calls": 3},
        "branching": {"rule": "threshold", "tau": 0.55},
    },
    "AEPO dynamic budget and penalty": {
        "rollout": {"group_size": 6, "initial_samples": 2, "max_tool_calls": 3},
        "branching": {"rule": "stochastic", "dynamic_budget": True, "consecutive_penalty": 0.3},
    },
    "AEPO penalty, single call": {
        "rollout": {"group_size": 8, "initial_samples": 2, "max_tool_calls": 2},
        "branching": {"rule": "stochastic", "consecutive_penalty": 0.5},
    },
}


def tree_digest(batch: Any) -> str:
    groups = [g.to_dict() for g in batch.groups]
    for g in groups:
        for p in g["paths"]:
            for c in p["tool_calls"]:
                c.pop("latency_ms")
    skip = ("time/", "throughput/", "tools/latency", "rollout/sampler_steps", "rollout/rounds", "rollout/ahead")
    metrics = {k: v for k, v in sorted(batch.metrics.items()) if not k.startswith(skip)}
    blob = json.dumps([groups, metrics], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def case_config(name: str) -> Any:
    overrides = CASES[name]
    return config(rollout={**overrides["rollout"], "tool_concurrency": 4}, branching=overrides["branching"])


@pytest.mark.parametrize("name", CASES)
def test_every_schedule_samples_the_recorded_trees(name: str) -> None:
    recorded = json.loads(DIGESTS.read_text())[name]
    cfg = case_config(name)
    for seed in SEEDS:
        for schedule, schedule_seed in SCHEDULES:
            batch, _ = rollout(cfg, schedule, schedule_seed, seed=seed)
            assert tree_digest(batch) == recorded[str(seed)], (seed, schedule, schedule_seed)


@pytest.mark.parametrize("schedule", ["literal", "eager"])
@pytest.mark.parametrize("name", CASES)
def test_the_other_schedules_sample_the_recorded_trees(name: str, schedule: Any) -> None:
    """`literal`: supplements once every other path has ended, decisions at the end of their segment;
    `eager`: each as soon as it is certain, nothing sent ahead (the default `ahead` is tested above)."""
    recorded = json.loads(DIGESTS.read_text())[name]
    for seed in SEEDS:
        sampler = ScriptedSampler(seeded_script, VOCAB, schedule="tokens")
        deps = RolloutDeps(sampler, {"upper": JitteryUpperTool()}, get_format("tags"), random.Random(seed))
        batch = run_rollouts([Sample(f"question {i}") for i in range(3)], case_config(name), deps, schedule=schedule)
        assert tree_digest(batch) == recorded[str(seed)], seed
        kinds = {kind for kind, _, _ in sampler.events}
        assert "abort" not in kinds and ("window" in kinds) == (schedule == "eager")


def test_the_recorded_cases_fork_and_supplement() -> None:
    """The digests would prove little if the cases never forked or never needed a supplement."""
    forks = supplements = 0
    for name in CASES:
        batch, _ = rollout(case_config(name), "batch", 0, seed=0)
        forks += int(batch.metrics["branch/forks"])
        supplements += int(batch.metrics["branch/supplements"])
    assert forks > 10 and supplements > 10


def record() -> None:
    out = {
        name: {str(seed): tree_digest(rollout(case_config(name), "batch", 0, seed=seed)[0]) for seed in SEEDS}
        for name in CASES
    }
    DIGESTS.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    record()
