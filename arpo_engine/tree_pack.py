"""Tree-packed log-probs: every token that several paths share is computed once (ARPO_SPEC.md §2, §4-5).

ARPO's forks repeat their parent's tokens up to the branch point, and all paths of a prompt (GRPO's too)
repeat the prompt. A causal LM gives a token the same hidden state whatever follows it, so the learner
only needs each distinct prefix once. `pack` inserts a micro-batch's sequences (prompt + response) into
a token trie and lays the trie out depth-first as one packed sequence:
- position ids are each token's depth, i.e. its position in every path that holds it;
- the trie splits into segments (chains between branch points), contiguous in the packed order;
- a segment's tokens attend causally to the segment and fully to its ancestor segments, nothing else.

`tree_attention` computes exactly that, segment by segment, so no attention is spent on token pairs
that do not see each other (a dense 4D mask over the packed sequence would compute all L² pairs and
mask most of them away; measured in bench/train.py). The LM head runs once per distinct trained token.
`tree_token_logprobs` then scatters the values back into the padded per-path layout of `Padded`, so the
loss sees exactly what path-by-path training sees: with `soft` advantages a shared token appears once
per path (its gradient is the sum over its copies, the token-mean counts it once per path) and the
gradient equals the path-by-path learner's up to float rounding. `eq6_mask` gives the `hard` variant
(paper Eq. 6): each distinct token counted once, with the mean advantage of the paths through it.

Sharing is found from tokens, not from the tree records: two paths that sample the same first tokens
by chance share them too, which is exact for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from arpo_engine.logprobs import TokenLogprobs, head_logprobs

ATTENTION = "arpo_tree"
"""The name `tree_attention` is registered under with transformers' attention interface."""

FLEX_BLOCK = 128
"""FlexAttention's block size: a pack attending through it is padded to a multiple of this."""


class Sequenced(Protocol):
    """What packing needs from a training sequence (arpo_engine.learner.TrainSequence satisfies it)."""

    prompt_ids: list[int]
    response_ids: list[int]


@dataclass(frozen=True)
class Segment:
    start: int
    end: int
    """Packed positions [start, end) of the segment's tokens."""
    keys: torch.Tensor
    """(K,) packed positions its tokens attend to: ancestor segments, then its own tokens."""
    mask: torch.Tensor | None
    """(end - start, K) bool, True where a query may attend; None for a root segment (plain causal)."""


@dataclass(frozen=True)
class TreePack:
    input_ids: torch.Tensor
    """(1, L) the distinct tokens, depth-first."""
    position_ids: torch.Tensor
    """(1, L) each token's position in the paths that hold it."""
    parent: torch.Tensor
    """(L,) packed position of the token before it (-1 for a first token)."""
    node: torch.Tensor
    """(B, T-1) packed position of the token whose log-prob sits at this padded position (-1: none)."""
    segments: tuple[Segment, ...]
    segment_of: torch.Tensor
    """(L,) the segment each packed token belongs to."""
    ancestors: torch.Tensor
    """(S, S) bool: row s is True at s and at every segment above it in the trie."""
    flex: Any = None
    """The block-sparse tree mask of `with_flex` (FlexAttention); None: attend segment by segment."""

    @property
    def length(self) -> int:
        """Packed tokens, padding for `with_flex` included (padding comes last and nothing reads it)."""
        return int(self.input_ids.shape[1])

    def to(self, device: torch.device) -> TreePack:
        segments = tuple(
            Segment(s.start, s.end, s.keys.to(device), None if s.mask is None else s.mask.to(device))
            for s in self.segments
        )
        return TreePack(
            self.input_ids.to(device), self.position_ids.to(device), self.parent.to(device), self.node.to(device),
            segments, self.segment_of.to(device), self.ancestors.to(device), self.flex,
        )  # fmt: skip

    def with_flex(self) -> TreePack:
        """The same pack attending through one FlexAttention kernel (CUDA), padded to whole 128-token blocks.

        The mask is `ancestors[segment(q), segment(kv)] and kv <= q`: depth-first order puts every ancestor
        before its descendants, so that is exactly "causal within the segment, everything above it".
        Blocks where no query sees any key are skipped, so the cost follows the tree, not L squared.
        Padding tokens form one extra segment that attends only to itself (no empty rows, no NaN).
        """
        from torch.nn.attention.flex_attention import create_block_mask

        real = self.length
        padded = -(-real // FLEX_BLOCK) * FLEX_BLOCK
        extra = padded - real
        device = self.input_ids.device
        segments = self.ancestors.shape[0]
        ancestors = torch.zeros(segments + 1, segments + 1, dtype=torch.bool, device=device)
        ancestors[:segments, :segments] = self.ancestors
        ancestors[segments, segments] = True
        segment_of = torch.cat([self.segment_of, torch.full((extra,), segments, dtype=torch.long, device=device)])

        def tree_mask(batch: Any, head: Any, q: Any, kv: Any) -> Any:
            return ancestors[segment_of[q], segment_of[kv]] & (kv <= q)

        try:  # compiled, the mask is built block by block; eagerly it materialises L x L first
            block_mask = create_block_mask(tree_mask, None, None, padded, padded, device=str(device), _compile=True)
        except Exception:  # an inductor that cannot compile here: the same mask, built with more memory
            block_mask = create_block_mask(tree_mask, None, None, padded, padded, device=str(device))
        pad = torch.zeros(1, extra, dtype=torch.long, device=device)
        return TreePack(
            torch.cat([self.input_ids, pad], dim=1), torch.cat([self.position_ids, pad], dim=1), self.parent,
            self.node, self.segments, segment_of, ancestors, block_mask,
        )  # fmt: skip


class _Trie:
    def __init__(self) -> None:
        self.token: list[int] = []
        self.parent: list[int] = []
        self.depth: list[int] = []
        self.children: list[dict[int, int]] = []
        self.roots: dict[int, int] = {}

    def insert(self, tokens: Sequence[int]) -> list[int]:
        """Node id of every token of the sequence, adding the nodes it does not share yet."""
        ids: list[int] = []
        level, parent = self.roots, -1
        for depth, token in enumerate(tokens):
            node = level.get(token)
            if node is None:
                node = len(self.token)
                level[token] = node
                self.token.append(token)
                self.parent.append(parent)
                self.depth.append(depth)
                self.children.append({})
            ids.append(node)
            level, parent = self.children[node], node
        return ids


def unique_tokens(batch: Sequence[Sequenced]) -> int:
    """Distinct tokens (trie nodes) of the sequences: the packed length `pack` would give."""
    trie = _Trie()
    for s in batch:
        trie.insert(s.prompt_ids + s.response_ids)
    return len(trie.token)


def pack(batch: Sequence[Sequenced], width: int) -> TreePack:
    """Pack sequences whose padded layout is `width` tokens wide (the longest prompt + response)."""
    trie = _Trie()
    rows = [trie.insert(s.prompt_ids + s.response_ids) for s in batch]
    order: list[int] = []  # packed position -> node
    spans: list[tuple[int, int, int]] = []  # (start, end, parent segment)
    stack = [(root, -1) for root in reversed(list(trie.roots.values()))]
    while stack:
        node, parent_segment = stack.pop()
        start = len(order)
        order.append(node)
        while len(trie.children[node]) == 1:
            (node,) = trie.children[node].values()
            order.append(node)
        spans.append((start, len(order), parent_segment))
        segment = len(spans) - 1
        stack.extend((child, segment) for child in reversed(list(trie.children[node].values())))

    where = [0] * len(order)  # node -> packed position
    for position, node in enumerate(order):
        where[node] = position
    segments: list[Segment] = []
    ancestry: list[list[tuple[int, int]]] = []  # per segment: the ranges it attends to, itself last
    for start, end, parent_segment in spans:
        ranges = (ancestry[parent_segment] if parent_segment >= 0 else []) + [(start, end)]
        ancestry.append(ranges)
        keys = torch.cat([torch.arange(a, b) for a, b in ranges])
        mask = None
        if len(ranges) > 1:
            before = len(keys) - (end - start)
            mask = torch.ones(end - start, len(keys), dtype=torch.bool)
            mask[:, before:] = torch.ones(end - start, end - start, dtype=torch.bool).tril()
        segments.append(Segment(start, end, keys, mask))

    ancestors = torch.zeros(len(spans), len(spans), dtype=torch.bool)
    segment_of = torch.empty(len(order), dtype=torch.long)
    for index, (start, end, parent_segment) in enumerate(spans):
        segment_of[start:end] = index
        ancestors[index, index] = True
        if parent_segment >= 0:
            ancestors[index] |= ancestors[parent_segment]  # parents come first in depth-first order

    targets = torch.full((len(batch), width - 1), -1, dtype=torch.long)
    for row, ids in enumerate(rows):
        targets[row, : len(ids) - 1] = torch.tensor([where[n] for n in ids[1:]], dtype=torch.long)
    parents = [trie.parent[n] for n in order]
    return TreePack(
        input_ids=torch.tensor([[trie.token[n] for n in order]], dtype=torch.long),
        position_ids=torch.tensor([[trie.depth[n] for n in order]], dtype=torch.long),
        parent=torch.tensor([where[p] if p >= 0 else -1 for p in parents], dtype=torch.long),
        node=targets,
        segments=tuple(segments),
        segment_of=segment_of,
        ancestors=ancestors,
    )


def eq6_mask(tree: TreePack, mask: torch.Tensor, advantages: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Paper Eq. 6: keep each distinct trained token once, with the mean advantage of its copies.

    `mask` and `advantages` are (B, T-1) in the padded layout. The first copy (row-major) of a token
    keeps mask 1 and gets the mean advantage of all its trained copies; the other copies get mask 0.
    """
    valid = (mask > 0) & (tree.node >= 0)  # (B, T-1)
    nodes = tree.node[valid]  # (C,)
    total = torch.zeros(tree.length, dtype=advantages.dtype, device=advantages.device)
    count = torch.zeros(tree.length, dtype=advantages.dtype, device=advantages.device)
    total.index_add_(0, nodes, advantages[valid])
    count.index_add_(0, nodes, torch.ones_like(nodes, dtype=advantages.dtype))
    seen: set[int] = set()
    flags = []
    for n in nodes.tolist():  # row-major first occurrence
        flags.append(n not in seen)
        seen.add(n)
    first = torch.tensor(flags, dtype=torch.bool, device=nodes.device)
    kept = torch.zeros_like(mask)
    kept[valid] = first.to(mask.dtype)
    mean = torch.zeros_like(advantages)
    mean[valid] = (total / count.clamp(min=1))[nodes]
    return kept, torch.where(kept > 0, mean, 0.0)


def tree_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    tree: TreePack | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Segment-wise attention over a packed tree: query (1, H, L, D), key/value (1, Hkv, L, D).

    Without `tree` (any other forward of a model switched to this implementation) it is plain SDPA.
    """
    if tree is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(  # type: ignore[no-any-return]
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if tree.flex is not None:
        out = _flex_attention()(query, key, value, block_mask=tree.flex, scale=scaling, enable_gqa=True)
        return out.transpose(1, 2).contiguous(), None  # (1, L, H, D)
    groups = query.shape[1] // key.shape[1]
    # On the CPU, SDPA's flash kernel shares each key/value head among its query heads itself
    # (enable_gqa); copying them per query head would triple what backward keeps per segment.
    # CUDA's kernels for arbitrary masks do not take grouped heads, so there the heads are repeated.
    repeat = groups > 1 and query.device.type != "cpu"
    outputs = []
    for s in tree.segments:
        q = query[:, :, s.start : s.end]  # (1, H, Ls, D)
        k = key.index_select(2, s.keys)  # (1, Hkv, K, D)
        v = value.index_select(2, s.keys)
        if repeat:
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        outputs.append(
            torch.nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=s.mask, is_causal=s.mask is None, scale=scaling, enable_gqa=groups > 1 and not repeat
            )
        )
    return torch.cat(outputs, dim=2).transpose(1, 2).contiguous(), None  # (1, L, H, D)


_registered = False
_compiled_flex: Any = None


def _flex_attention() -> Any:
    """FlexAttention compiled once per process, for any packed length (eager FlexAttention would
    materialise the whole L x L score matrix)."""
    global _compiled_flex
    if _compiled_flex is None:
        from torch.nn.attention.flex_attention import flex_attention

        _compiled_flex = torch.compile(flex_attention, dynamic=True)
    return _compiled_flex


def flex_unsupported(model: Any, device: torch.device | str) -> str:
    """Why FlexAttention cannot train this model here ("" when it can): it runs backward on CUDA only,
    and its kernels need attention heads of at least 16 dimensions."""
    if torch.device(device).type != "cuda":
        return f"needs a CUDA learner; this one trains on {device}"
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    if head_dim < 16:
        return f"needs attention heads of at least 16 dimensions; this model's have {head_dim}"
    return ""


def _register() -> None:
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION, tree_attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)  # any mask it builds is ignored under a tree
    _registered = True


def use_tree_attention(model: Any) -> None:
    """Route the model's attention through `tree_attention` from now on (plain SDPA without a tree).

    For good, not for one forward: activation checkpointing and the LM-head checkpoints recompute
    forwards during backward, which must take the same path. The setting is not saved with the model.
    """
    _register()
    model.config._attn_implementation = ATTENTION


def tree_token_logprobs(
    model: Any,
    tree: TreePack,
    select: torch.Tensor,
    *,
    temperature: float = 1.0,
    with_entropy: bool = False,
    chunk_size: int | None = None,
) -> TokenLogprobs:
    """Like `logprobs.token_logprobs` with `select`, (B, T-1) in the padded layout, from one packed pass.

    The body runs once over the distinct tokens, the LM head once per distinct selected token, and the
    values are copied to every padded position that holds that token (so gradients add up over copies).
    """
    if model.config._attn_implementation != ATTENTION:
        use_tree_attention(model)
    hidden = model.base_model(
        input_ids=tree.input_ids, position_ids=tree.position_ids, use_cache=False, tree=tree
    ).last_hidden_state[0]  # (L, H)
    wanted = select & (tree.node >= 0)  # (B, T-1)
    distinct, copies = torch.unique(tree.node[wanted], return_inverse=True)  # (U,), (C,)
    h = hidden.index_select(0, tree.parent[distinct])  # (U, H): a token is predicted from the one before it
    labels = tree.input_ids[0].index_select(0, distinct)  # (U,)
    lp, ent = head_logprobs(
        model, h, labels, temperature=temperature, with_entropy=with_entropy, chunk_size=chunk_size
    )

    def spread(values: torch.Tensor) -> torch.Tensor:  # (U,) -> the padded layout, one copy per path
        full = values.new_zeros(select.shape)
        return full.index_put((wanted.nonzero(as_tuple=True)), values.index_select(0, copies))

    return TokenLogprobs(spread(lp), spread(ent) if ent is not None else None)


def tree_micro_batches(batch: Sequence[Any], max_tokens: int) -> Iterator[list[Any]]:
    """Consecutive groups whose packed length stays within max_tokens (at least one sequence each).

    Sequences of one prompt arrive together (the learner orders mini-batches by prompt), so a group
    grows by whole trees while they fit and splits a tree only when it alone is over the budget.
    """
    current: list[Any] = []
    trie = _Trie()
    for s in batch:
        tokens = s.prompt_ids + s.response_ids
        trie.insert(tokens)
        if current and len(trie.token) > max_tokens:
            yield current
            current, trie = [], _Trie()
            trie.insert(tokens)
        current.append(s)
    if current:
        yield current
