"""Scale-out: a run's sampler and learner as Ray actors across nodes (ARCHITECTURE.md, issue 13).

`driver.run_distributed_training` runs `trainer.train` with its stages on actors: several samplers for
data-parallel rollouts (each prompt's tree on one sampler), one learner, weight sync through Ray's
object store with a policy version every rollout is checked against, and a restart from the last
checkpoint when a node is lost. `pipeline.run_training` calls it for a config whose `distributed`
section asks for it; every other run stays in one process, without Ray. Only driver.py and
placement.py import Ray; actors.py and shards.py are plain Python around the engine's own objects.
"""

from arpo_engine.distributed.placement import Placement

__all__ = ["Placement"]
