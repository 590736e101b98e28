"""A run across nodes of Ray's own multi-node test cluster, all on this machine.

The cluster: a head node marked `learner` and two nodes marked `sampler`, one CPU each and small object
stores. A two-step run on the tiny model with its learner and two samplers on three different nodes
matches the in-process run of the same seed; losing a sampler node mid-run resumes from the last
checkpoint on a replacement node; a sampler holding other weights than the learner stops the rollout.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from arpo_engine.config import load_config
from arpo_engine.pipeline import run_training
from tests.test_trainer import write_config, write_data

pytestmark = pytest.mark.slow

STORE = 80 * 1024 * 1024
"""Object store per node: the tiny model's weights (13 MB) pass through it at every sync."""
COMPARED = (
    "reward/mean", "loss/policy", "grad/norm", "response/len_mean", "entropy/token_mean", "branch/forks",
    "tools/calls_per_traj", "rollout/tokens_generated", "train/sequences", "eval/accuracy", "eval/reward_mean",
)  # fmt: skip


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    import ray
    from ray.cluster_utils import Cluster

    # Ray writes the head's address under its temp folder, where a bare ray.init() would find it: keep ours private.
    folder = tempfile.mkdtemp(prefix="arpo-dist-", dir="/tmp")
    saved = {k: os.environ.get(k) for k in ("RAY_TMPDIR", "RAY_USAGE_STATS_ENABLED", "OMP_NUM_THREADS")}
    # The nodes' processes inherit this environment. Ray gives a one-CPU actor one thread only when
    # OMP_NUM_THREADS is unset, and the vLLM sampler sets it in this process when an earlier test starts one:
    # pin it, so the actors compute on one thread like the in-process reference, whatever ran before.
    os.environ.update(RAY_TMPDIR=folder, RAY_USAGE_STATS_ENABLED="0", OMP_NUM_THREADS="1")
    # A lost node is noticed within about a second (defaults: tens of seconds).
    health = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 300, "health_check_failure_threshold": 3}
    head = {"num_cpus": 1, "resources": {"learner": 1}, "object_store_memory": STORE, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args={**head, "_system_config": health})
    try:
        for _ in range(2):
            add_sampler_node(cluster)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def add_sampler_node(cluster: Any) -> Any:
    return cluster.add_node(num_cpus=1, resources={"sampler": 1}, object_store_memory=STORE)


def sampler_nodes(cluster: Any) -> list[Any]:
    return [n for n in cluster.worker_nodes if n.node_id != cluster.head_node.node_id]


def run(folder: Path, model: Path, **overrides: Any) -> tuple[Any, list[tuple[int, dict]], list[str]]:
    sink = overrides.pop("_sink", None)
    # One request per decode batch, here and on the sampler nodes: the in-process sampler batches all the
    # step's paths, each node only its share, and padded batches of other sizes round differently, which
    # tipped a near-tied draw at step 2 on an AVX512 CPU (the same draw on AVX2).
    overrides.setdefault("rollout__max_batch_size", 1)
    folder.mkdir(exist_ok=True)
    write_data(folder)
    config = load_config(write_config(folder, model, **overrides))
    history: list[tuple[int, dict]] = []
    logs: list[str] = []

    def record(step: int, metrics: dict) -> None:
        history.append((step, metrics))
        if sink is not None:
            sink(step, metrics)

    result = run_training(config, log=logs.append, sink=record)
    return result, history, logs


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[list, Path]:
    """The reference: the same run in this process, without Ray, on one thread as each node's actors are.

    Ray starts an actor of one CPU with OMP_NUM_THREADS=1; torch on more threads splits its reductions
    otherwise, and the step-1 weights then differ in the last bits, enough to tip a near-tied draw at step 2
    (seen on an AVX512 Xeon: reward/mean 0.4659 on two threads, 0.4773 on one, as on the cluster)."""
    import torch

    folder = tmp_path_factory.mktemp("in-process")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result, history, _ = run(folder, tiny_model_dir)
    finally:
        torch.set_num_threads(threads)
    assert result.steps_done == 2
    return history, folder / "runs" / "run-tiny"


DISTRIBUTED = {"samplers": 2, "sampler_cpus": 1, "learner_cpus": 1}


def assert_same_metrics(history: list, reference: list, steps: tuple[int, ...] = (0, 1, 2)) -> None:
    ours, theirs = dict(history), dict(reference)
    for step in steps:
        for key in COMPARED:
            if key in theirs[step]:
                assert math.isclose(ours[step][key], theirs[step][key], rel_tol=1e-3, abs_tol=1e-4), (step, key)


def test_a_run_with_its_learner_and_samplers_on_other_nodes_matches_the_in_process_run(
    cluster, in_process, tmp_path, tiny_model_dir
):
    reference, reference_dir = in_process
    result, history, logs = run(tmp_path, tiny_model_dir, distributed=DISTRIBUTED)

    assert result.steps_done == 2
    placed = next(line for line in logs if line.startswith("placed on Ray"))
    learner_part, sampler_part = placed.split(", 2 sampler(s) on node(s) ")
    assert cluster.head_node.node_id[:12] in learner_part
    assert sorted(sampler_part.split(", ")) == sorted(n.node_id[:12] for n in sampler_nodes(cluster))
    assert_same_metrics(history, reference)
    steps = dict(history)
    assert steps[1]["rollout/samplers"] == 2.0 and steps[1]["sync/tensors"] > 0
    # the learner wrote the checkpoints, with the weights the in-process run trained
    ours = load_file(tmp_path / "runs" / "run-tiny" / "step-2" / "model.safetensors")
    theirs = load_file(reference_dir / "step-2" / "model.safetensors")
    assert ours.keys() == theirs.keys()
    assert all((ours[k] - theirs[k]).abs().max() < 1e-4 for k in ours)
    state = json.loads((tmp_path / "runs" / "run-tiny" / "resume" / "step-2" / "state.json").read_text())
    assert state["step"] == 2


def test_losing_a_sampler_node_mid_run_resumes_from_the_last_checkpoint_and_finishes(
    cluster, in_process, tmp_path, tiny_model_dir
):
    reference, _ = in_process

    def lose_a_node(step: int, metrics: dict) -> None:
        if step == 1:  # the step-1 checkpoint is written; step 2 is next
            cluster.remove_node(sampler_nodes(cluster)[0], allow_graceful=False)
            add_sampler_node(cluster)  # a replacement, as a cluster's autoscaler would bring

    result, history, logs = run(tmp_path, tiny_model_dir, distributed=DISTRIBUTED, _sink=lose_a_node)

    assert result.steps_done == 2
    assert any(line.startswith("lost an actor") for line in logs), logs
    assert any(line.startswith("resuming from") and "(step 1)" in line for line in logs), logs
    assert [step for step, _ in history] == [0, 1, 2]
    assert_same_metrics(history, reference, steps=(2,))  # the resumed step is the one an uninterrupted run takes


def test_a_sampler_holding_other_weights_than_the_learner_stops_the_rollout(cluster, tmp_path, tiny_model_dir):
    import random

    import ray

    from arpo_engine.data import load_samples
    from arpo_engine.distributed.driver import Fleet
    from arpo_engine.distributed.placement import Placement
    from arpo_engine.distributed.shards import PolicyVersionError

    write_data(tmp_path)
    config = load_config(write_config(tmp_path, tiny_model_dir, distributed=DISTRIBUTED))
    samples = load_samples(tmp_path / "train.jsonl")[:2]
    fleet = Fleet(config, "versions", Placement(request_memory=False))
    try:
        assert fleet.reserve(log=print, should_stop=lambda: False)
        fleet.start_samplers(tiny_model_dir, version=0)
        ray.get(fleet.learner.load.remote(str(tiny_model_dir), str(tiny_model_dir), resume_step=None, version=0))
        fleet.update([])  # the learner moves to version 1 (an empty batch changes no weight)
        payload = fleet.learner.publish.remote()
        assert ray.get(fleet.samplers[0].load_weights.remote(payload))[0] == 1  # only one sampler is synced

        with pytest.raises(PolicyVersionError, match="sampler 1 holds version 0; the learner's is 1"):
            fleet.rollouts(samples, random.Random(0), False, 0)
        with pytest.raises(PolicyVersionError, match="sampler 1 asked for a rollout"):
            ray.get(fleet.samplers[1].rollout.remote(samples, 0, random.Random(0).getstate(), False, 1))

        fleet.sync()
        batch = fleet.rollouts(samples, random.Random(0), False, 0)
        assert fleet.versions() == [1, 1] and len(batch.groups) == 2
    finally:
        fleet.shutdown()


def test_the_services_run_actor_drives_a_run_whose_learner_broadcasts_to_its_sampler(
    cluster, in_process, tmp_path, tiny_model_dir
):
    """One sampler, the learner in an actor of its own, weights synced by a collective broadcast (gloo)."""
    import time

    from worker.runner import TERMINAL, RunActor, RunOptions

    reference, _ = in_process
    write_data(tmp_path)
    distributed = {"separate_learner": True, "weight_sync": "collective"}
    config = load_config(write_config(tmp_path, tiny_model_dir, distributed=distributed))
    actor = RunActor(7, config.to_dict(), options=RunOptions(no_tool_steps=0))
    actor.start()
    deadline = time.monotonic() + 240
    while actor.state not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.5)

    events = actor.events.after(0, 10_000)
    statuses = [e["data"] for e in events if e["kind"] == "status"]
    assert statuses[-1]["status"] == "succeeded", [e["data"] for e in events if e["kind"] == "log"]
    lines = [e["data"]["line"] for e in events if e["kind"] == "log"]
    assert any(line.startswith("placed on Ray: the learner on node") for line in lines)
    history = [(e["step"], e["data"]) for e in events if e["kind"] == "metrics"]
    assert [step for step, _ in history] == [0, 1, 2]
    assert dict(history)[1]["rollout/samplers"] == 1.0
    assert_same_metrics(history, reference)  # step 2 sampled with the weights the broadcast carried
    assert any(e["kind"] == "checkpoint" and e["step"] == 2 for e in events)
    assert actor.usage()["cpus"] == 2.0  # the learner's and the sampler's CPUs count as the run's


def test_a_cluster_that_never_grows_and_can_never_hold_the_run_is_a_config_error(cluster, tmp_path, tiny_model_dir):
    from arpo_engine.config import ConfigError
    from arpo_engine.distributed.driver import Fleet
    from arpo_engine.distributed.placement import Placement

    write_data(tmp_path)
    config = load_config(write_config(tmp_path, tiny_model_dir, distributed={"samplers": 2, "sampler_cpus": 2}))
    fleet = Fleet(config, "too-big", Placement(request_memory=False, fixed_cluster=True))
    with pytest.raises(ConfigError, match="ask for 5 CPU, the cluster has 3"):
        fleet.reserve(log=print, should_stop=lambda: False)
    assert fleet.group is None
