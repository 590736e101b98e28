"""Where a run's actors go, and which configs ask for Ray at all (no Ray started here)."""

import pytest

from arpo_engine.config import ConfigError, RunConfig
from arpo_engine.distributed.placement import plan_bundles, reserved_total


def config(**distributed) -> RunConfig:
    return RunConfig.from_dict({"optim": {"train_batch_prompts": 4}, "distributed": distributed}).validate()


def test_one_sampler_and_no_separate_learner_stays_in_one_process():
    assert not RunConfig().distributed.enabled
    assert config(samplers=2).distributed.enabled
    assert config(separate_learner=True).distributed.enabled


def test_nodes_marked_for_samplers_and_learners_get_their_own_kind_of_bundle():
    cfg = config(samplers=2, sampler_gpus=1, learner_cpus=2, learner_gpus=1)
    bundles = plan_bundles(cfg, {"CPU": 16, "GPU": 3, "sampler": 2, "learner": 1}, memory={"learner": 7, "sampler": 5})
    assert bundles == [
        {"CPU": 2.0, "GPU": 1.0, "learner": 1.0, "memory": 7.0},
        {"CPU": 1.0, "GPU": 1.0, "sampler": 1.0, "memory": 5.0},
        {"CPU": 1.0, "GPU": 1.0, "sampler": 1.0, "memory": 5.0},
    ]
    assert reserved_total(bundles) == {"CPU": 4.0, "GPU": 3.0}


def test_a_cluster_without_markers_gets_plain_cpu_bundles():
    assert plan_bundles(config(samplers=3), {"CPU": 8}) == [{"CPU": 1.0}] * 4


@pytest.mark.parametrize(
    ("distributed", "message"),
    [
        ({"samplers": 0}, "distributed.samplers must be at least 1"),
        ({"samplers": 5}, "a sampler would get no prompt"),
        ({"sampler_cpus": 0}, "a sampler actor must reserve a CPU or a GPU"),
        ({"learner_gpus": -1}, "distributed.learner_cpus and distributed.learner_gpus must be zero or more"),
        ({"max_restarts": -1}, "distributed.max_restarts must be zero or more"),
    ],
)
def test_impossible_distributed_settings_are_config_errors(distributed, message):
    with pytest.raises(ConfigError, match=message):
        config(**distributed)


def test_bundles_beyond_everything_a_cluster_has_are_named():
    from arpo_engine.distributed.placement import never_fits

    bundles = plan_bundles(config(samplers=2, sampler_cpus=2), {"CPU": 3, "sampler": 2})
    assert never_fits(bundles, {"CPU": 3, "sampler": 2}) == "5 CPU, the cluster has 3"
    assert never_fits(bundles, {"CPU": 8, "sampler": 2}) is None
