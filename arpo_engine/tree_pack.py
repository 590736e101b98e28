"""Tree-packed log-probs: every token that several paths share is computed once (ARPO_SPEC.md §2, §4-5).

ARPO's forks repeat their parent's tokens up to the branch point, and all paths of a prompt (GRPO's too)
repeat the prompt. A causal LM gives a token the same hidden state whatever follows it, so the learner
only needs each distinct prefix once. `pack` lays the token trie of a micro-batch's sequences (prompt +
response) out depth-first as one packed sequence (sorted, the sequences list it in that order):
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

import bisect
import dataclasses
import importlib.util
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
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
    key_start: int
    key_end: int
    """Its slice of `TreePack.keys`: the packed positions it attends to, ancestor segments first, itself last."""

    @property
    def is_root(self) -> bool:
        """No ancestors: the segment attends to itself only, plain causal."""
        return self.key_end - self.key_start == self.end - self.start


@dataclass(frozen=True)
class Varlen:
    """Each segment as one sequence of a variable-length batch: its tokens as queries, its keys as keys."""

    cu_q: torch.Tensor
    """(S+1,) int32 segment starts in the pack, then its length."""
    cu_k: torch.Tensor
    """(S+1,) int32 segment starts in the gathered keys (`TreePack.keys`), then their count."""
    max_q: int
    max_k: int


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
    keys: torch.Tensor
    """(sum of K,) every segment's key positions, one after the other (`Segment.key_start`/`key_end`)."""
    segment_of: torch.Tensor
    """(L,) the segment each packed token belongs to."""
    ancestors: torch.Tensor
    """(S, S) bool: row s is True at s and at every segment above it in the trie."""
    flex: Any = None
    """The block-sparse tree mask of `with_flex` (FlexAttention); None: attend segment by segment."""
    varlen: Varlen | None = None
    """The segments as FlashAttention's variable-length batch (`with_varlen`); None: not that way."""
    masks: dict[int, torch.Tensor] = field(default_factory=dict, compare=False, repr=False)
    """Segment attention masks, made on the pack's device when first asked for (`segment_mask`)."""

    @property
    def length(self) -> int:
        """Packed tokens, padding for `with_flex` included (padding comes last and nothing reads it)."""
        return int(self.input_ids.shape[1])

    def segment_mask(self, index: int) -> torch.Tensor | None:
        """(Ls, K) bool for a segment with ancestors: all of them, then causal within itself; None for a root.

        Made once per pack and shared by every layer (autograd keeps one tensor, not one per layer).
        """
        s = self.segments[index]
        if s.is_root:
            return None
        mask = self.masks.get(index)
        if mask is None:
            rows, cols = s.end - s.start, s.key_end - s.key_start
            mask = torch.ones(rows, cols, dtype=torch.bool, device=self.keys.device).tril(cols - rows)
            self.masks[index] = mask
        return mask

    def to(self, device: torch.device) -> TreePack:
        return TreePack(
            self.input_ids.to(device), self.position_ids.to(device), self.parent.to(device), self.node.to(device),
            self.segments, self.keys.to(device), self.segment_of.to(device), self.ancestors.to(device), self.flex,
        )  # fmt: skip

    def with_varlen(self) -> TreePack:
        """The same pack attending through one FlashAttention variable-length call per layer (CUDA, bf16).

        Segment s is sequence s of the batch: its queries are its own tokens (contiguous in the pack), its
        keys `keys[key_start:key_end]`, ancestors first. With more keys than queries, FlashAttention's causal
        mask is aligned to the bottom right: query j sees every key up to its own position, i.e. all its
        ancestors and itself, nothing else. So only the pairs that see each other are computed, in one
        kernel, with no mask built at all; the cost is a gather of the ancestors' keys and values.
        """
        device = self.input_ids.device
        starts = [s.start for s in self.segments] + [self.length]
        key_starts = [s.key_start for s in self.segments] + [int(self.keys.numel())]
        index = Varlen(
            cu_q=torch.tensor(starts, dtype=torch.int32, device=device),
            cu_k=torch.tensor(key_starts, dtype=torch.int32, device=device),
            max_q=max(s.end - s.start for s in self.segments),
            max_k=max(s.key_end - s.key_start for s in self.segments),
        )
        return dataclasses.replace(self, varlen=index, masks={})

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
            self.node, self.segments, self.keys, segment_of, ancestors, block_mask,
        )  # fmt: skip


def _shared(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the common prefix of two token arrays."""
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if differ.size else n


class DistinctTokens:
    """The number of distinct prefixes (trie nodes) of a growing set of sequences.

    Sorted, a set of sequences has as many distinct prefixes as tokens, less what each sequence shares
    with the one before it; adding one changes only its two neighbours' terms.
    """

    def __init__(self) -> None:
        self.rows: list[list[int]] = []
        self.arrays: list[np.ndarray] = []
        self.count = 0

    def add(self, tokens: list[int]) -> int:
        """Add a sequence; returns the new count."""
        at = bisect.bisect_right(self.rows, tokens)
        new = np.asarray(tokens, dtype=np.int64)
        before = self.arrays[at - 1] if at > 0 else None
        after = self.arrays[at] if at < len(self.arrays) else None
        self.count += len(tokens)
        if before is not None:
            self.count -= _shared(before, new)
        if after is not None:
            self.count -= _shared(new, after)
            if before is not None:
                self.count += _shared(before, after)
        self.rows.insert(at, tokens)
        self.arrays.insert(at, new)
        return self.count


def unique_tokens(batch: Sequence[Sequenced]) -> int:
    """Distinct tokens (trie nodes) of the sequences: the packed length `pack` would give."""
    counter = DistinctTokens()
    for s in batch:
        counter.add(s.prompt_ids + s.response_ids)
    return counter.count


def pack(batch: Sequence[Sequenced], width: int) -> TreePack:
    """Pack sequences whose padded layout is `width` tokens wide (the longest prompt + response).

    Sorted, the sequences list their trie depth-first: each one adds the tokens past what it shares
    with the one before it, and that run's parent is the shared prefix's last token. A segment ends
    where the next run starts, or where a later sequence branches off (its neighbour in sorted order
    then shares exactly up to there), so every segment is a chain whose tokens all precede its
    children's. All of it is array work per sequence, not per token.
    """
    sequences = [s.prompt_ids + s.response_ids for s in batch]
    arrays = [np.asarray(t, dtype=np.int64) for t in sequences]
    where: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(batch)  # per row: packed position of each token
    tokens, depths, parents, starts = [], [], [], []
    total, previous = 0, -1
    for row in sorted(range(len(batch)), key=sequences.__getitem__):
        a = arrays[row]
        shared = 0
        if previous >= 0:
            shared = _shared(arrays[previous], a)
            if shared < len(arrays[previous]):  # a branch: the earlier sibling's chain ends before it
                starts.append(int(where[previous][shared]))
        own = np.arange(total, total + len(a) - shared)
        where[row] = np.concatenate([where[previous][:shared], own]) if shared else own
        if len(own):
            starts.append(total)
            tokens.append(a[shared:])
            depths.append(np.arange(shared, len(a)))
            parents.append(np.concatenate([[-1], own[:-1]]) if shared == 0 else where[row][shared - 1 : -1])
            total += len(own)
        previous = row

    length = total
    begin = np.unique(np.asarray(starts, dtype=np.int64))
    end = np.append(begin[1:], length) if len(begin) else begin
    parent = np.concatenate(parents) if parents else np.empty(0, dtype=np.int64)
    segment_of = np.searchsorted(begin, np.arange(length), side="right") - 1
    count = len(begin)
    ancestors = np.zeros((count, count), dtype=bool)
    ranges: list[list[tuple[int, int]]] = []
    segments: list[Segment] = []
    key_parts: list[np.ndarray] = []
    offset = 0
    for index, (start, stop) in enumerate(zip(begin.tolist(), end.tolist(), strict=True)):
        above = int(segment_of[parent[start]]) if parent[start] >= 0 else -1  # parents come first depth-first
        if above >= 0:
            ancestors[index] = ancestors[above]
        ancestors[index, index] = True
        ranges.append((ranges[above] if above >= 0 else []) + [(start, stop)])
        keys = np.concatenate([np.arange(a, b) for a, b in ranges[index]])
        key_parts.append(keys)
        segments.append(Segment(start, stop, offset, offset + len(keys)))
        offset += len(keys)

    targets = torch.full((len(batch), width - 1), -1, dtype=torch.long)
    for row, positions in enumerate(where):
        targets[row, : len(positions) - 1] = torch.from_numpy(positions[1:])
    return TreePack(
        input_ids=torch.from_numpy(np.concatenate(tokens) if tokens else np.empty(0, dtype=np.int64))[None],
        position_ids=torch.from_numpy(np.concatenate(depths) if depths else np.empty(0, dtype=np.int64))[None],
        parent=torch.from_numpy(parent),
        node=targets,
        segments=tuple(segments),
        keys=torch.from_numpy(np.concatenate(key_parts) if key_parts else np.empty(0, dtype=np.int64)),
        segment_of=torch.from_numpy(segment_of),
        ancestors=torch.from_numpy(ancestors),
    )


def eq6_mask(tree: TreePack, mask: torch.Tensor, advantages: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Paper Eq. 6: keep each distinct trained token once, with the mean advantage of its copies.

    `mask` and `advantages` are (B, T-1) in the padded layout. The first copy (row-major) of a token
    keeps mask 1 and gets the mean advantage of all its trained copies; the other copies get mask 0.
    """
    valid = (mask > 0) & (tree.node >= 0)  # (B, T-1)
    nodes = tree.node[valid]  # (C,) row-major
    total = torch.zeros(tree.length, dtype=advantages.dtype, device=advantages.device)
    count = torch.zeros(tree.length, dtype=advantages.dtype, device=advantages.device)
    total.index_add_(0, nodes, advantages[valid])
    count.index_add_(0, nodes, torch.ones_like(nodes, dtype=advantages.dtype))
    order = torch.arange(len(nodes), device=nodes.device)
    first_copy = torch.full((tree.length,), len(nodes), dtype=torch.long, device=nodes.device)
    first_copy.scatter_reduce_(0, nodes, order, reduce="amin")
    kept = torch.zeros_like(mask)
    kept[valid] = (first_copy[nodes] == order).to(mask.dtype)
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
    if tree.varlen is not None:
        return _varlen_attention(query, key, value, tree, tree.varlen, scaling), None
    # On the CPU, SDPA's flash kernel shares each key/value head among its query heads itself
    # (enable_gqa); copying them per query head would triple what backward keeps per segment.
    # CUDA's kernels for arbitrary masks do not take grouped heads, so there the heads are repeated.
    repeat = groups > 1 and query.device.type != "cpu"
    outputs = []
    for index, s in enumerate(tree.segments):
        q = query[:, :, s.start : s.end]  # (1, H, Ls, D)
        if s.is_root:  # itself only: a slice, no copy
            k, v = key[:, :, s.start : s.end], value[:, :, s.start : s.end]
        else:
            keys = tree.keys[s.key_start : s.key_end]
            k, v = key.index_select(2, keys), value.index_select(2, keys)  # (1, Hkv, K, D)
        if repeat:
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        mask = tree.segment_mask(index)
        outputs.append(
            torch.nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=mask is None, scale=scaling, enable_gqa=groups > 1 and not repeat
            )
        )
    return torch.cat(outputs, dim=2).transpose(1, 2).contiguous(), None  # (1, L, H, D)


def _varlen_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, tree: TreePack, lengths: Varlen, scale: float | None
) -> torch.Tensor:
    """One FlashAttention variable-length call over the segments (`TreePack.with_varlen`): (1, L, H, D)."""
    from torch.nn.attention.varlen import varlen_attn

    half = torch.bfloat16 if query.is_cuda and query.dtype == torch.float32 else query.dtype  # no fp32 kernel
    q = query[0].transpose(0, 1).to(half).contiguous()  # (L, H, D)
    k = key[0].transpose(0, 1).to(half).index_select(0, tree.keys)  # (sum of K, Hkv, D): ancestors per segment
    v = value[0].transpose(0, 1).to(half).index_select(0, tree.keys)
    out = varlen_attn(
        q, k, v, lengths.cu_q, lengths.cu_k, lengths.max_q, lengths.max_k,
        scale=scale, window_size=(-1, 0), enable_gqa=query.shape[1] != key.shape[1],
    )  # fmt: skip
    assert isinstance(out, torch.Tensor)
    return out.to(query.dtype)[None]


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


def varlen_unsupported(model: Any, device: torch.device | str, precision: str) -> str:
    """Why FlashAttention's variable-length kernel cannot train this model here ("" when it can): it runs
    on CUDA, in half precision, with heads of at most 256 dimensions in multiples of 8."""
    if torch.device(device).type != "cuda":
        return f"needs a CUDA learner; this one trains on {device}"
    if precision != "bf16":
        return f"needs optim.precision bf16 (FlashAttention has no fp32 kernel); this learner computes in {precision}"
    if importlib.util.find_spec("torch.nn.attention.varlen") is None:
        return f"needs torch.nn.attention.varlen, which torch {torch.__version__} does not have"
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    if head_dim > 256 or head_dim % 8:
        return f"needs attention heads of at most 256 dimensions, a multiple of 8; this model's have {head_dim}"
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
    lp, ent = head_logprobs(model, h, labels, temperature=temperature, with_entropy=with_entropy, chunk_size=chunk_size)

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
    counter = DistinctTokens()
    for s in batch:
        tokens = s.prompt_ids + s.response_ids
        if counter.add(tokens) > max_tokens and current:
            yield current
            current, counter = [], DistinctTokens()
            counter.add(tokens)
        current.append(s)
    if current:
        yield current
