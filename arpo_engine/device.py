"""Where the learner runs and how it computes there: device, autocast, activation checkpointing.

`optim.device` and `rollout.device` name devices (`auto`, `cpu`, `cuda`, `cuda:N`); `resolve_device`
turns a name into a torch device, `auto` meaning the first GPU when CUDA is present. `autocast` is the
learner's mixed precision for that device type (bf16 on CPU and GPU; weights, optimizer state and
log-prob sums stay fp32). `learner_precision` decides it: bf16 only where the device multiplies bf16
matrices natively (a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX). Elsewhere PyTorch emulates
bf16 matrix products in a reference loop: on an AVX2-only CPU a 2048x576 by 576x1536 product took
about 3 s in bf16 against 28 ms in fp32, so a bf16 update would take hours; fp32 is used instead.
`enable_activation_checkpointing` makes every decoder block recompute its
activations in backward; Hugging Face only checkpoints blocks in training mode, and the learner runs
in eval mode (no dropout, so its forward doubles as the old policy), so `checkpointing` switches the
blocks alone into training mode for the duration of a forward pass.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch

from arpo_engine.config import PRECISIONS


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` -> cuda:0 when CUDA is present, else cpu; `cuda` -> cuda:0; anything else as torch reads it."""
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} asked for, but this machine has no CUDA device")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise RuntimeError(f"device {name!r} asked for, but this machine has {torch.cuda.device_count()} GPU(s)")
        return torch.device("cuda", index)
    return device


def native_bf16(device: torch.device) -> bool:
    """Whether `device` multiplies bf16 matrices in hardware (else PyTorch emulates them, far slower)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        # Not oneDNN's `_is_mkldnn_bf16_supported`: it is true on any AVX512 CPU, where bf16 products are
        # converted in software (a 2048x576 by 576x1536 product: 56 ms in bf16, 16 ms in fp32, measured).
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return False


def learner_precision(precision: str, device: torch.device) -> tuple[str, str | None]:
    """The precision the learner computes in on `device` for `optim.precision`, and why it differs when it does.

    `auto` means bf16 where `native_bf16`, else fp32. An explicit `bf16` on a device without it also
    computes in fp32 (same weights and optimizer state; only the matrix products are more exact), with
    the reason returned for the run's log, because emulated bf16 is two orders of magnitude slower.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "fp32":
        return "fp32", None
    if native_bf16(device):
        return "bf16", None
    if precision == "auto":
        return "fp32", None
    what = "this CPU has no native bf16 matrix products (AVX512-BF16 or AMX)" if device.type == "cpu" else (
        f"{device} has no native bf16")  # fmt: skip
    return "fp32", f"optim.precision bf16: {what}, where bf16 runs about 100x slower than fp32; training in fp32"


def autocast(device: torch.device, precision: str) -> Any:
    """bf16 autocast for `device`'s type when precision is `bf16`; a no-op context otherwise."""
    if precision != "bf16":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def decoder_layers(model: Any) -> list[Any]:
    layers = getattr(model.base_model, "layers", None)
    return list(layers) if layers is not None else []


def enable_activation_checkpointing(model: Any) -> None:
    """Checkpoint every decoder block (non-reentrant: frozen blocks and keyword arguments work)."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    # transformers also makes the input embeddings' output require grad (reentrant checkpointing needs
    # that). With frozen lower blocks it sends backward through every block and recomputes them all:
    # an update took 2.2x as long instead of ~1.15x. Non-reentrant checkpointing does not need it.
    if hasattr(model, "disable_input_require_grads"):
        model.disable_input_require_grads()
    model.config.use_cache = False


@contextmanager
def checkpointing(model: Any) -> Iterator[None]:
    """Within this block, blocks with checkpointing on recompute activations in backward.

    Only the block modules themselves enter training mode; their attention and MLP stay in eval mode,
    so nothing else (dropout) changes.
    """
    layers = [m for m in decoder_layers(model) if getattr(m, "gradient_checkpointing", False)]
    if not layers or not torch.is_grad_enabled():
        yield
        return
    before = [m.training for m in layers]
    for m in layers:
        m.training = True
    try:
        yield
    finally:
        for m, was in zip(layers, before, strict=True):
            m.training = was


def peak_memory_bytes(device: torch.device) -> int:
    """Peak allocated bytes on a GPU since the last reset; 0 on the CPU (see arpo_engine.memory for RSS)."""
    if device.type != "cuda":
        return 0
    return int(torch.cuda.max_memory_allocated(device))


@functools.cache
def _libc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


def release_freed_memory() -> bool:
    """Give the heap pages freed since the last call back to the OS; True where that was possible (glibc).

    glibc keeps freed memory in its arenas: after each update of the demo run (activations, gradients
    and logits freed) the process kept about 2.6 GB it no longer used, so every later phase started that
    much higher (bench/memory.py).
    """
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0) >= 0)
