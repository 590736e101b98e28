"""The weights the learner publishes after an update, in the form Ray's object store carries best.

A reader gets numpy arrays straight out of its node's object store, without a copy; a pickled torch
tensor is rebuilt in new memory by every reader. So the payload holds each distinct tensor once as a
numpy array (bfloat16 as its int16 bits), names tied ones (`lm_head.weight` sharing `embed_tokens`)
as aliases, and each sampler copies the read-only views straight into its own weights.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class WeightsPayload:
    """One policy version's weights: published once into the object store, read by every sampler."""

    version: int
    arrays: dict[str, Any]
    """Name -> numpy array (CPU), each distinct storage once; plain Hugging Face names, LoRA merged in."""
    dtypes: dict[str, str]
    """Name -> torch dtype name, for the arrays that hold another dtype's bits (bfloat16)."""
    aliases: dict[str, str]
    """Name -> the name in `arrays` whose tensor it shares (tied weights)."""

    def __len__(self) -> int:
        return len(self.arrays) + len(self.aliases)

    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(name, tensor) for every weight; the tensors are read-only views, to be copied from."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            views = {name: _from_numpy(array, self.dtypes.get(name)) for name, array in self.arrays.items()}
        yield from views.items()
        for name, target in self.aliases.items():
            yield name, views[target]

    @property
    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in self.arrays.values())


def pack(version: int, state: Mapping[str, torch.Tensor]) -> WeightsPayload:
    arrays: dict[str, Any] = {}
    dtypes: dict[str, str] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[int, tuple[int, ...], torch.dtype], str] = {}
    for name, tensor in state.items():
        key = (tensor.data_ptr(), tuple(tensor.shape), tensor.dtype)
        if key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        t = tensor.detach().to("cpu").contiguous()
        if t.dtype == torch.bfloat16:  # numpy has no bfloat16: carry the bits
            t, dtypes[name] = t.view(torch.int16), "bfloat16"
        arrays[name] = t.numpy()
    return WeightsPayload(version, arrays, dtypes, aliases)


def _from_numpy(array: Any, dtype: str | None) -> torch.Tensor:
    tensor = torch.from_numpy(array)
    return tensor.view(getattr(torch, dtype)) if dtype else tensor
