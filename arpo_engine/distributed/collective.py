"""Weight sync by a collective broadcast (`distributed.weight_sync: collective`): NCCL on GPUs, gloo on CPUs.

The learner (rank 0) and the samplers (ranks 1..N) join one torch.distributed process group when the run
is placed. After each update the learner broadcasts its policy version, then every tensor of its merged
state dict in the order of a `Layout` each sampler was given once; each sampler receives into buffers of
that layout and loads them, and holds the version the learner sent. Nothing passes through the object
store. The tests run it with gloo between CPU actors; with NCCL between GPU actors it is the same code
with another backend, and has not been run here (that needs two GPUs; NCCL puts no two ranks on one).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

GROUP_TIMEOUT_S = 600
"""A broadcast that waits longer than this for a rank has lost it: the run restarts from its checkpoint."""


@dataclass(frozen=True)
class Layout:
    """Names, shapes and dtypes of the broadcast tensors, in broadcast order."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]


def layout_of(state: Mapping[str, torch.Tensor]) -> Layout:
    names = tuple(sorted(state))
    return Layout(names, tuple(tuple(state[n].shape) for n in names), tuple(str(state[n].dtype) for n in names))


def backend_for(learner_gpus: float, sampler_gpus: float) -> str:
    return "nccl" if learner_gpus > 0 and sampler_gpus > 0 else "gloo"


def free_address() -> str:
    """host:port on this node for the group's rendezvous (rank 0 listens there)."""
    import ray

    host = ray.util.get_node_ip_address()
    with socket.socket() as s:
        s.bind((host, 0))
        return f"{host}:{s.getsockname()[1]}"


def join(address: str, rank: int, world: int, backend: str) -> None:
    """Join the run's group; every rank calls this at once and it returns when all have."""
    dist.init_process_group(
        backend, init_method=f"tcp://{address}", rank=rank, world_size=world, timeout=timedelta(seconds=GROUP_TIMEOUT_S)
    )


def device_for(backend: str) -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")


def send(version: int, state: Mapping[str, torch.Tensor], layout: Layout, device: torch.device) -> None:
    """Rank 0: the version, then each tensor of `layout`."""
    dist.broadcast(torch.tensor([version], dtype=torch.long, device=device), src=0)
    for name in layout.names:
        dist.broadcast(state[name].detach().to(device).contiguous(), src=0)


def receive(layout: Layout, device: torch.device) -> tuple[int, dict[str, Any]]:
    """Ranks 1..N: the learner's version and its tensors."""
    version = torch.zeros(1, dtype=torch.long, device=device)
    dist.broadcast(version, src=0)
    weights = {}
    for name, shape, dtype in zip(layout.names, layout.shapes, layout.dtypes, strict=True):
        buffer = torch.empty(shape, dtype=getattr(torch, dtype.removeprefix("torch.")), device=device)
        dist.broadcast(buffer, src=0)
        weights[name] = buffer
    return int(version.item()), weights


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
