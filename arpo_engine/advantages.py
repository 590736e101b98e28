"""Advantage attribution: per-token advantages for the paths of one rollout group (ARPO_SPEC.md §4, §6).

Both estimators start from the GRPO advantage of each path, A_i = (r_i - mean(r)) / (std(r) + 1e-6)
with the unbiased std over the group, and differ only in how A_i reaches the tokens:

- `soft` (default, every paper result): every model token of path i gets A_i.
- `hard` (paper Eq. 6): a token that several paths share through forking gets the mean A of those
  paths; a token after the last fork gets its own path's A.

Each path keeps its own copy of a shared token in the batch, so under a token-mean loss the copies'
advantages sum to the same total either way (k copies of the mean = the sum of the k advantages);
the estimators differ where clipping acts per copy, or where copies land in different mini-batches.

Tool-result tokens (mask 0) always get 0. A group whose rewards are all equal (a single path
included) carries no signal and gets zero advantages; `advantage_metrics` reports their share.
`entropy_aware_advantages` is AEPO's token-entropy reweighting (§6), applied to a padded batch.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import torch

from arpo_engine.rollout.types import Path, RolloutGroup

GRPO_EPS = 1e-6
"""Added to the std so a near-degenerate group does not blow the advantages up (GRPO convention)."""

AdvantageEstimator = Callable[[Sequence[Path], Sequence[float]], list[list[float]]]
"""(paths of one group, GRPO advantage per path) -> per-token advantages aligned with each path's tokens."""


@dataclass(frozen=True)
class GroupAdvantages:
    prompt_index: int
    path_ids: list[int]
    rewards: list[float]
    path_advantages: list[float]
    """A_i per path, in the order of `path_ids` (all 0 for a degenerate group)."""
    token_advantages: list[list[float]]
    """Per path, one advantage per response token, aligned with `Path.token_ids`; 0 where mask is 0."""
    degenerate: bool
    """All rewards equal (or fewer than two paths): no learning signal in this group."""
    reward_mean: float
    reward_std: float
    """Unbiased std of the rewards; 0 for a single path."""
    num_model_tokens: int
    """Tokens with mask 1 over all paths (shared tokens count once per path that holds them)."""

    @property
    def num_paths(self) -> int:
        return len(self.path_ids)


def grpo_advantages(rewards: Sequence[float], *, eps: float = GRPO_EPS) -> list[float]:
    """Per-path GRPO advantage (r_i - mean) / (std + eps), unbiased std; all 0 if the rewards are equal."""
    if len(set(rewards)) <= 1:
        # Exact zeros: (r - mean) of equal floats can be ~1e-17, which eps would not fully cancel.
        return [0.0] * len(rewards)
    mean = statistics.fmean(rewards)
    std = statistics.stdev(rewards)
    return [(r - mean) / (std + eps) for r in rewards]


def soft_token_advantages(paths: Sequence[Path], path_advantages: Sequence[float]) -> list[list[float]]:
    """GRPO broadcast: every model token of path i gets A_i."""
    return [[a if m else 0.0 for m in p.mask] for p, a in zip(paths, path_advantages, strict=True)]


def hard_token_advantages(paths: Sequence[Path], path_advantages: Sequence[float]) -> list[list[float]]:
    """Paper Eq. 6: each physical token gets the mean A_i of the paths that contain it.

    A token is identified by (owner, position), the owner being the earliest ancestor that generated
    it. `_ownership` cuts each path into spans by owner; for each owner, the positions where the set of
    covering paths changes split its tokens into pieces, and each piece gets the mean A of its paths.
    """
    advantage_of = {p.id: a for p, a in zip(paths, path_advantages, strict=True)}
    spans = _ownership(paths)

    covering: dict[int, list[tuple[int, int, float]]] = {}
    for path_id, path_spans in spans.items():
        for owner, start, end in path_spans:
            covering.setdefault(owner, []).append((start, end, advantage_of[path_id]))

    pieces: dict[int, list[tuple[int, int, float]]] = {}
    for owner, owner_spans in covering.items():
        cuts = sorted({s for s, _, _ in owner_spans} | {e for _, e, _ in owner_spans})
        for lo, hi in pairwise(cuts):
            shared = [a for s, e, a in owner_spans if s <= lo and hi <= e]
            if shared:
                pieces.setdefault(owner, []).append((lo, hi, statistics.fmean(shared)))

    out: list[list[float]] = []
    for p in paths:
        values = [0.0] * len(p.token_ids)
        for owner, start, end in spans[p.id]:
            for lo, hi, mean in pieces[owner]:
                if start <= lo and hi <= end:
                    values[lo:hi] = [mean] * (hi - lo)
        out.append([v if m else 0.0 for v, m in zip(values, p.mask, strict=True)])
    return out


ESTIMATORS: dict[str, AdvantageEstimator] = {
    "soft": soft_token_advantages,
    "hard": hard_token_advantages,
}


def attribute_advantages(
    group: RolloutGroup, rewards: Sequence[float], *, estimator: str = "soft"
) -> GroupAdvantages:
    """Per-token advantages for one group; `rewards` is aligned with `group.paths`."""
    if estimator not in ESTIMATORS:
        known = ", ".join(sorted(ESTIMATORS))
        raise ValueError(f"unknown advantage estimator {estimator!r} (known: {known})")
    paths = group.paths
    if len(rewards) != len(paths):
        raise ValueError(f"group {group.prompt_index}: {len(rewards)} rewards for {len(paths)} paths")
    for p in paths:
        if len(p.mask) != len(p.token_ids):
            raise ValueError(f"path {p.id}: mask has {len(p.mask)} entries for {len(p.token_ids)} tokens")
    rewards = [float(r) for r in rewards]
    path_advantages = grpo_advantages(rewards)
    return GroupAdvantages(
        prompt_index=group.prompt_index,
        path_ids=[p.id for p in paths],
        rewards=rewards,
        path_advantages=path_advantages,
        token_advantages=ESTIMATORS[estimator](paths, path_advantages),
        degenerate=len(set(rewards)) <= 1,
        reward_mean=statistics.fmean(rewards) if rewards else 0.0,
        reward_std=statistics.stdev(rewards) if len(rewards) > 1 else 0.0,
        num_model_tokens=sum(p.num_model_tokens for p in paths),
    )


def advantage_metrics(results: Sequence[GroupAdvantages]) -> dict[str, float]:
    """Batch metrics in the PRODUCT.md vocabulary; an empty batch reports 0."""
    degenerate = sum(r.degenerate for r in results)
    return {"groups/degenerate_frac": degenerate / len(results) if results else 0.0}


def entropy_moments(entropies: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """Mean and population std of the token entropies where mask is 1 (0, 0 for an empty mask)."""
    h = entropies.detach().double()[mask.bool()]  # (valid,)
    if h.numel() == 0:
        return 0.0, 0.0
    mean = h.mean()
    return float(mean), float(((h - mean) ** 2).mean().sqrt())


def entropy_aware_advantages(
    advantages: torch.Tensor,
    entropies: torch.Tensor,
    mask: torch.Tensor,
    *,
    weight: float = 0.2,
    moments: tuple[float, float] | None = None,
) -> torch.Tensor:
    """AEPO: A * (1 + weight * z(H)), z = token entropy standardised over the valid tokens of the mini-batch.

    `moments` (mean, std) are those of the whole mini-batch when it is split into micro-batches, so the
    result does not depend on a memory setting; None computes them from this batch. Always applied when
    called: the official code skips it unless the entropy bonus is non-zero, a defect this project does
    not copy (ARPO_SPEC.md §6). The std is the population one, so a batch with one valid token (std 0)
    gets z = 0 instead of NaN. Entropies are detached: the reweighting shapes the advantage and must not
    itself be differentiated.
    """
    valid = mask.bool()  # (B, T)
    h = entropies.detach().to(advantages.dtype)  # (B, T)
    mean, std = moments if moments is not None else entropy_moments(h, valid)
    z = (h - mean) / (std + GRPO_EPS)  # (B, T)
    return torch.where(valid, advantages * (1.0 + weight * z), 0.0)


def _ownership(paths: Sequence[Path]) -> dict[int, list[tuple[int, int, int]]]:
    """Per path id: spans (owner id, start, end) covering its response, owned by the earliest generator.

    A path with parent p and fork boundary b took positions [0, b) from p, which itself may have
    taken a shorter prefix from its own parent; walking up the lineage with `end` shrinking to the
    tightest boundary seen gives, for each ancestor, the positions it generated.
    """
    by_id = {p.id: p for p in paths}
    for p in paths:
        _check_fork(p, by_id)
    spans: dict[int, list[tuple[int, int, int]]] = {}
    for p in paths:
        node, end, own = p, len(p.token_ids), []
        for _ in range(len(paths)):
            start = 0 if node.parent is None else min(_boundary(node), end)
            if start < end:
                own.append((node.id, start, end))
            if node.parent is None or start == 0:
                break
            node, end = by_id[node.parent], start
        else:
            raise ValueError(f"path {p.id}: its lineage has a cycle")
        spans[p.id] = own
    return spans


def _check_fork(p: Path, by_id: dict[int, Path]) -> None:
    """A fork must name a parent of this group and repeat the parent's tokens up to the boundary."""
    if p.parent is None:
        return
    parent = by_id.get(p.parent)
    if parent is None:
        raise ValueError(f"path {p.id}: parent {p.parent} is not in the group")
    b = _boundary(p)
    if not 0 <= b <= min(len(p.token_ids), len(parent.token_ids)):
        raise ValueError(f"path {p.id}: fork boundary {b} lies outside it or its parent {parent.id}")
    # The tree, not token equality, decides sharing; a mismatch means the tree is wrong.
    if p.token_ids[:b] != parent.token_ids[:b]:
        raise ValueError(f"path {p.id}: tokens before fork boundary {b} differ from parent {parent.id}")


def _boundary(p: Path) -> int:
    if p.fork_boundary is None:
        raise ValueError(f"path {p.id}: has a parent but no fork boundary")
    return p.fork_boundary
