"""Where a run's actors go: one Ray placement group that reserves the learner and every sampler together.

Bundle 0 is the learner's, bundles 1..N the samplers'. A cluster that marks its nodes with the custom
resources `learner` and `sampler` (`ray start --resources='{"sampler": 2}'`: room for two sampler
actors) gets each bundle on a node of its kind; a cluster without them gets plain CPU/GPU bundles,
packed where they fit. Each bundle also asks for the memory the engine estimates for its part
(`arpo_engine.memory`), unless the caller turns that off.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from arpo_engine.config import RunConfig

LEARNER, SAMPLER = "learner", "sampler"
"""Custom resources that mark a node for learner or sampler actors."""


@dataclass(frozen=True)
class Placement:
    """How the driver asks Ray for the run's actors; plain values chosen by its caller (the service, the CLI)."""

    request_memory: bool = True
    """Add the engine's memory estimate to each bundle."""
    runtime_env: Mapping[str, Any] | None = None
    """Ray runtime environment of the actors (environment variables …); None: inherit the caller's."""
    wait_log_s: float = 60.0
    """While the cluster has no room for the bundles, say so this often."""
    fixed_cluster: bool = False
    """The cluster never grows (a local Ray this process started): bundles it can never hold are an error."""
    on_placed: Callable[[dict[str, float]], None] | None = None
    """Told the resources the placement group reserved (CPU, GPU …), once it is ready."""


def plan_bundles(
    config: RunConfig, cluster: Mapping[str, float], *, memory: Mapping[str, int] | None = None
) -> list[dict[str, float]]:
    """The learner's bundle, then one per sampler. `cluster`: `ray.cluster_resources()`; `memory`: bytes per
    role ({"learner": …, "sampler": …}) or None to ask for none."""
    d = config.distributed
    bundles = []
    for role, count, cpus, gpus in (
        (LEARNER, 1, d.learner_cpus, d.learner_gpus),
        (SAMPLER, d.samplers, d.sampler_cpus, d.sampler_gpus),
    ):
        bundle: dict[str, float] = {}
        if cpus:
            bundle["CPU"] = float(cpus)
        if gpus:
            bundle["GPU"] = float(gpus)
        if cluster.get(role, 0.0) > 0:
            bundle[role] = 1.0
        if memory and memory.get(role):
            bundle["memory"] = float(memory[role])
        bundles += [dict(bundle) for _ in range(count)]
    return bundles


def never_fits(bundles: list[dict[str, float]], cluster: Mapping[str, float]) -> str | None:
    """What the bundles ask for beyond everything the cluster has ("3 CPU, the cluster has 2"), or None."""
    wanted: dict[str, float] = {}
    for bundle in bundles:
        for key, value in bundle.items():
            wanted[key] = wanted.get(key, 0.0) + value
    short = [
        f"{v:g} {k}, the cluster has {cluster.get(k, 0.0):g}" for k, v in wanted.items() if v > cluster.get(k, 0.0)
    ]
    return "; ".join(short) or None


def role_memory(config: RunConfig) -> dict[str, int]:
    """Bytes to reserve per role, from the engine's estimate: a learner, and one sampler (with its KV cache)."""
    from arpo_engine.memory import RUNTIME_BYTES, estimate

    needed = estimate(config)
    return {LEARNER: needed.learner_bytes + RUNTIME_BYTES, SAMPLER: needed.sampler_bytes + RUNTIME_BYTES}


def actor_options(bundle: Mapping[str, float], placement_group: Any, index: int) -> dict[str, Any]:
    """`ray.remote(...).options(...)` that put an actor into bundle `index`, asking for all of it."""
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    custom = {k: v for k, v in bundle.items() if k not in ("CPU", "GPU", "memory")}
    options: dict[str, Any] = {
        "num_cpus": bundle.get("CPU", 0.0),
        "num_gpus": bundle.get("GPU", 0.0),
        "resources": custom,
        "max_restarts": 0,  # a lost actor is replaced by re-placing the run from its last checkpoint
        "scheduling_strategy": PlacementGroupSchedulingStrategy(
            placement_group=placement_group, placement_group_bundle_index=index
        ),
    }
    if "memory" in bundle:
        options["memory"] = int(bundle["memory"])
    return options


def reserve(
    bundles: list[dict[str, float]],
    *,
    should_stop: Callable[[], bool],
    log: Callable[[str], None],
    wait_log_s: float = 60.0,
) -> Any | None:
    """A ready placement group for `bundles`, or None when `should_stop` said so while it waited."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    group = placement_group(bundles, strategy="PACK")
    ready = group.ready()
    started = last_said = time.monotonic()
    while not ray.wait([ready], timeout=1.0)[0]:
        if should_stop():
            remove_placement_group(group)
            return None
        if time.monotonic() - last_said >= wait_log_s:
            last_said = time.monotonic()
            log(
                f"waiting {last_said - started:.0f} s for room on the Ray cluster: the run needs {bundles}, "
                f"the cluster has {ray.available_resources()} free"
            )
    return group


def reserved_total(bundles: list[dict[str, float]]) -> dict[str, float]:
    """CPUs and GPUs of all the bundles together (what the run holds, for its usage record)."""
    total: dict[str, float] = {}
    for bundle in bundles:
        for key in ("CPU", "GPU"):
            if key in bundle:
                total[key] = total.get(key, 0.0) + bundle[key]
    return total
