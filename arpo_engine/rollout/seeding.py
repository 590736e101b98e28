"""Seeds and draws named by where they are used, not by when (ARPO_SPEC.md §2; STYLE: injected randomness).

The agent loop takes sampler results and tool results in whatever order they finish. Drawing each
request's sampling seed and each branch decision's uniform from one shared generator would make the
trees depend on that order. Instead the loop draws one base seed from the injected `random.Random`
and derives every other number as a hash of the base seed and a stable name: the prompt, the path's
key in the tree, and the segment or tool index.
"""

from __future__ import annotations

import hashlib

Part = int | str | tuple[int, ...]


def _digest(parts: tuple[Part, ...]) -> int:
    # blake2b of the repr, not hash(): stable across processes and Python versions.
    data = repr(parts).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def stable_seed(*parts: Part) -> int:
    """A 31-bit sampling seed for the request named by `parts` (every engine takes a seed that small)."""
    return _digest(parts) >> 33


def stable_uniform(*parts: Part) -> float:
    """A uniform draw in [0, 1) for the decision named by `parts` (53 bits, like random.random)."""
    return (_digest(parts) >> 11) / float(1 << 53)
