"""Tree-packed learner: the same log-probs and gradients as path-by-path training, Eq. 6 for `hard`."""

from __future__ import annotations

import copy

import pytest
import torch

from arpo_engine.config import AlgorithmConfig, OptimConfig
from arpo_engine.learner import Learner, TrainSequence, pad_sequences
from arpo_engine.logprobs import token_logprobs
from arpo_engine.tree_pack import (
    FLEX_BLOCK,
    DistinctTokens,
    eq6_mask,
    pack,
    tree_micro_batches,
    tree_token_logprobs,
    unique_tokens,
)
from tests.toy import VOCAB, small_llama
from tests.trees import record_trees, train_sequences


def forked_batch() -> list[TrainSequence]:
    """One prompt: A, B forked from A at 6, C forked from B at 9, D independent; a second prompt."""
    g = torch.Generator().manual_seed(1)
    rand = lambda n: torch.randint(0, VOCAB, (n,), generator=g).tolist()  # noqa: E731
    prompt = rand(7)
    a = rand(15)
    b = a[:6] + rand(8)
    c = b[:9] + rand(6)
    d = rand(10)
    mask = lambda r: [1] * 3 + [0] * 2 + [1] * (len(r) - 5)  # noqa: E731
    out = [
        TrainSequence(0, prompt, r, mask(r), [adv] * len(r)) for r, adv in ((a, 1.0), (b, -0.5), (c, 2.0), (d, -2.5))
    ]
    out.append(TrainSequence(1, prompt[:3] + rand(2), rand(9), [1] * 9, [0.7] * 9))
    return out


def grads_after_update(model: torch.nn.Module, batch: list[TrainSequence], **optim: object) -> torch.Tensor:
    settings: dict[str, object] = {"lr": 1e-3, "mini_batch_prompts": 8, "micro_batch_tokens": 100_000, "grad_clip": 1e9}
    settings.update(optim)
    advantage = str(settings.pop("advantage", "soft"))
    learner = Learner(model, optim=OptimConfig(**settings), algorithm=AlgorithmConfig(advantage=advantage),  # type: ignore[arg-type]
                      pad_token_id=0)  # fmt: skip
    grads: list[torch.Tensor] = []  # as the optimizer step sees them (the learner frees them after the update)
    learner.optimizer.register_step_pre_hook(
        lambda *_: grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    )
    learner.update(batch)
    assert len(grads) == 1 and all(p.grad is None for p in model.parameters())
    return grads[0]


def assert_close_grads(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> None:
    assert b.norm() > 0
    assert (a - b).norm() / b.norm() < tol


def test_packing_computes_each_shared_token_once():
    batch = forked_batch()
    tree = pack(batch, pad_sequences(batch, 0).input_ids.shape[1])
    prompt, a, b_own, c_own, d = 7, 15, 8, 6, 10
    assert tree.length == prompt + a + b_own + c_own + d + 5 - 3 + 9  # second prompt shares its first 3 tokens


def awkward_batch() -> list[TrainSequence]:
    """Duplicates, a path that is a prefix of another, prompts sharing a few tokens, a lone token."""
    g = torch.Generator().manual_seed(3)
    rand = lambda n: torch.randint(0, 5, (n,), generator=g).tolist()  # noqa: E731  # 5 symbols: chance sharing too
    prompt = rand(4)
    a = rand(12)
    rows = [(prompt, a), (prompt, a), (prompt, a[:5]), (prompt, a[:5] + rand(6)), (prompt[:2], rand(7)), ([9], [9])]
    rows += [(prompt, rand(9)) for _ in range(6)]
    return [TrainSequence(i % 3, p, r, [1] * len(r), [1.0] * len(r)) for i, (p, r) in enumerate(rows)]


def ancestry(tree) -> torch.Tensor:
    """(L, L) bool from the parent pointers alone: a token sees itself and every token above it."""
    allowed = torch.eye(tree.length, dtype=torch.bool)
    rows, above = torch.arange(tree.length), tree.parent.clone()
    while (live := above >= 0).any():  # every token climbs one level a pass, until all reach a root
        allowed[rows[live], above[live]] = True
        above = torch.where(live, tree.parent[above.clamp(min=0)], above)
    return allowed


@pytest.mark.parametrize("source", ["forked", "awkward", "recorded"])
def test_pack_is_the_token_trie_laid_out_depth_first(source):
    batch = {"forked": forked_batch, "awkward": awkward_batch,
             "recorded": lambda: train_sequences(record_trees(3, group_size=4, initial=2, words=12))}[source]()  # fmt: skip
    padded = pad_sequences(batch, 0)
    tree = pack(batch, padded.input_ids.shape[1])
    distinct = {tuple((s.prompt_ids + s.response_ids)[: j + 1]) for s in batch for j in range(s.length)}
    assert tree.length == len(distinct) == unique_tokens(batch)
    ids, depth, parent = tree.input_ids[0], tree.position_ids[0], tree.parent
    for row, s in enumerate(batch):  # each path's tokens, read back through the pack, are the path
        tokens = s.prompt_ids + s.response_ids
        nodes = tree.node[row, : len(tokens) - 1]
        assert ids[nodes].tolist() == tokens[1:] and depth[nodes].tolist() == list(range(1, len(tokens)))
        assert parent[nodes].tolist() == [int(parent[nodes[0]]), *nodes[:-1].tolist()]
        assert (tree.node[row, len(tokens) - 1 :] == -1).all()
    assert (parent < torch.arange(tree.length)).all()  # depth-first: a parent comes before its children
    # what segment attention lets each token see is exactly its ancestors, and so is the FlexAttention rule
    assert torch.equal(dense_tree_mask(tree), ancestry(tree))


def test_distinct_token_count_follows_a_growing_batch():
    batch = awkward_batch() + forked_batch()
    seen: set[tuple[int, ...]] = set()
    counter = DistinctTokens()
    for s in batch:
        tokens = s.prompt_ids + s.response_ids
        seen |= {tuple(tokens[: j + 1]) for j in range(len(tokens))}
        assert counter.add(tokens) == len(seen)


def test_tree_logprobs_equal_padded_logprobs_with_entropies():
    model, batch = small_llama(), forked_batch()
    padded = pad_sequences(batch, 0)
    tree = pack(batch, padded.input_ids.shape[1])
    select = padded.mask > 0
    ref = token_logprobs(model, padded.input_ids, padded.attention_mask, select=select, with_entropy=True)
    out = tree_token_logprobs(model, tree, select, with_entropy=True)
    torch.testing.assert_close(out.logprobs, ref.logprobs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.entropies, ref.entropies, rtol=1e-5, atol=1e-5)


def test_soft_gradient_equals_path_by_path_gradient_on_a_forked_tree():
    base = small_llama()
    packed = grads_after_update(copy.deepcopy(base), forked_batch(), tree_pack=True)
    paths = grads_after_update(copy.deepcopy(base), forked_batch(), tree_pack=False)
    assert_close_grads(packed, paths)


@pytest.mark.parametrize("branching", [True, False], ids=["arpo", "grpo"])
def test_soft_gradient_equals_path_by_path_gradient_on_recorded_demo_trees(branching):
    groups = record_trees(2, group_size=4, initial=2, branching=branching, words=12)
    base = small_llama(layers=2)
    packed = grads_after_update(copy.deepcopy(base), train_sequences(groups), tree_pack=True)
    paths = grads_after_update(copy.deepcopy(base), train_sequences(groups), tree_pack=False)
    assert_close_grads(packed, paths, tol=1e-4)


def test_recorded_arpo_trees_pack_to_fewer_tokens_than_grpo_batches():
    arpo = train_sequences(record_trees(2, group_size=4, initial=2, words=12))
    grpo = train_sequences(record_trees(2, group_size=4, branching=False, words=12))
    assert unique_tokens(arpo) / sum(s.length for s in arpo) < unique_tokens(grpo) / sum(s.length for s in grpo)


def test_eq6_keeps_one_copy_of_each_shared_token_with_the_mean_advantage():
    batch = forked_batch()
    padded = pad_sequences(batch, 0)
    tree = pack(batch, padded.input_ids.shape[1])
    mask, adv = eq6_mask(tree, padded.mask, padded.advantages)
    # row 1 (B) shares A's first 6 response tokens: its trained ones there are A's copies, so dropped
    start = len(batch[1].prompt_ids) - 1
    assert mask[1, start : start + 6].sum() == 0
    assert mask[0, start : start + 3].tolist() == [1.0, 1.0, 1.0]
    # C shares 6 tokens with A and B: mean of (1, -0.5, 2); tokens 6..9 with B only: mean of (-0.5, 2)
    assert adv[0, start].item() == pytest.approx((1.0 - 0.5 + 2.0) / 3)
    assert adv[1, start + 6].item() == pytest.approx((-0.5 + 2.0) / 2)
    assert mask.sum() == unique_trained(batch)


def unique_trained(batch: list[TrainSequence]) -> int:
    seen = set()
    for s in batch:
        for j, m in enumerate(s.mask):
            if m:
                seen.add(tuple(s.prompt_ids + s.response_ids[: j + 1]))
    return len(seen)


def test_hard_tree_update_trains_each_shared_token_once():
    """Eq. 6 equals path-by-path training where later copies of a shared token are masked out."""
    base = small_llama()
    hard = forked_batch()
    for s in hard:  # what hard_token_advantages gives: shared tokens carry the mean of their paths
        s.advantages = list(s.advantages)
    padded = pad_sequences(hard, 0)
    tree = pack(hard, padded.input_ids.shape[1])
    mask, adv = eq6_mask(tree, padded.mask, padded.advantages)
    deduped = []
    for row, s in enumerate(hard):
        start, end = padded.spans[row]
        deduped.append(
            TrainSequence(
                s.prompt_index,
                s.prompt_ids,
                s.response_ids,
                [int(v) for v in mask[row, start:end].tolist()],
                adv[row, start:end].tolist(),
            )
        )
    packed = grads_after_update(copy.deepcopy(base), hard, tree_pack=True, advantage="hard")
    paths = grads_after_update(copy.deepcopy(base), deduped, tree_pack=False)
    assert_close_grads(packed, paths)


def test_tree_micro_batches_stay_within_the_distinct_token_budget():
    batch = train_sequences(record_trees(3, group_size=4, initial=2, words=12))
    budget = max(unique_tokens([s]) for s in batch) * 2
    chunks = list(tree_micro_batches(batch, budget))
    assert sum(len(c) for c in chunks) == len(batch)
    assert all(unique_tokens(c) <= budget or len(c) == 1 for c in chunks)


def test_activation_checkpointing_gives_the_same_gradient():
    base = small_llama()
    plain = grads_after_update(copy.deepcopy(base), forked_batch())
    checkpointed = grads_after_update(copy.deepcopy(base), forked_batch(), activation_checkpointing=True)
    assert_close_grads(checkpointed, plain)


def test_activation_checkpointing_leaves_frozen_blocks_out_of_backward():
    # transformers' checkpointing makes the embeddings require grad, which would send backward (and a
    # recomputation) through every frozen block; only the trainable top block may be in the graph.
    model, seen = small_llama(), []

    def record(_module: object, _args: object, out: object) -> None:
        hidden = out[0] if isinstance(out, tuple) else out
        seen.append(bool(hidden.requires_grad))  # type: ignore[union-attr]

    for layer in model.model.layers:
        layer.register_forward_hook(record)
    grads_after_update(model, forked_batch(), activation_checkpointing=True, trainable_layers=1)
    layers = len(model.model.layers)
    assert seen[:layers] == [False] * (layers - 1) + [True]


@pytest.mark.gpu
@pytest.mark.parametrize("tree_pack", [True, False])
def test_learner_on_cuda_matches_the_cpu_gradient(tree_pack):
    base = small_llama()
    on_cpu = grads_after_update(copy.deepcopy(base), forked_batch(), device="cpu", tree_pack=tree_pack)
    on_gpu = grads_after_update(copy.deepcopy(base), forked_batch(), device="cuda", tree_pack=tree_pack)
    assert_close_grads(on_gpu.cpu(), on_cpu, tol=1e-3)


@pytest.mark.gpu
def test_bf16_autocast_on_cuda_points_the_same_way_as_fp32():
    base = small_llama()
    fp32 = grads_after_update(copy.deepcopy(base), forked_batch(), device="cuda")
    bf16 = grads_after_update(copy.deepcopy(base), forked_batch(), device="cuda", precision="bf16")
    assert torch.nn.functional.cosine_similarity(fp32, bf16, dim=0) > 0.9


def dense_tree_mask(tree) -> torch.Tensor:
    """(L, L) bool from the segments' own key lists: who each packed token may attend to."""
    allowed = torch.zeros(tree.length, tree.length, dtype=torch.bool)
    for index, s in enumerate(tree.segments):
        mask = tree.segment_mask(index)
        if mask is None:
            mask = torch.ones(s.end - s.start, s.end - s.start, dtype=torch.bool).tril()
        allowed[s.start : s.end, tree.keys[s.key_start : s.key_end]] = mask
    return allowed


@pytest.mark.parametrize("source", ["forked", "recorded"])
def test_flex_tree_mask_is_the_segment_attention_pattern(source):
    batch = (
        forked_batch() if source == "forked" else train_sequences(record_trees(3, group_size=4, initial=2, words=12))
    )
    tree = pack(batch, pad_sequences(batch, 0).input_ids.shape[1])
    q = torch.arange(tree.length)[:, None]
    kv = torch.arange(tree.length)[None, :]
    flex_rule = tree.ancestors[tree.segment_of[:, None], tree.segment_of[None, :]] & (kv <= q)
    assert torch.equal(flex_rule, dense_tree_mask(tree))


def test_flex_block_mask_visits_exactly_the_blocks_where_tokens_see_each_other():
    """`with_flex` on the CPU: the pack padded to whole blocks, the padding attending only to itself, and the
    block-sparse mask's non-empty blocks those of the tree's token-level mask (FlexAttention skips the rest)."""
    batch = train_sequences(record_trees(3, group_size=4, initial=2, words=12))
    tree = pack(batch, pad_sequences(batch, 0).input_ids.shape[1])
    flex = tree.with_flex()
    assert flex.length % FLEX_BLOCK == 0 and 0 < flex.length - tree.length < FLEX_BLOCK
    assert torch.equal(flex.input_ids[:, : tree.length], tree.input_ids) and torch.equal(flex.keys, tree.keys)
    pad = flex.length - tree.length
    dense = torch.zeros(flex.length, flex.length, dtype=torch.bool)
    dense[: tree.length, : tree.length] = ancestry(tree)
    dense[tree.length :, tree.length :] = torch.ones(pad, pad, dtype=torch.bool).tril()
    n = flex.length // FLEX_BLOCK
    visited = dense.view(n, FLEX_BLOCK, n, FLEX_BLOCK).any(3).any(1)
    assert torch.equal(flex.flex.to_dense()[0, 0].bool(), visited)
    assert visited.sum() < n * (n + 1) // 2  # the tree skips blocks a causal mask would compute


def test_flex_is_used_only_where_it_can_run():
    auto_cpu = Learner(
        small_llama(head_dim=16), optim=OptimConfig(device="cpu"), algorithm=AlgorithmConfig(), pad_token_id=0
    )
    assert auto_cpu.tree_attention == "segments"
    if torch.cuda.is_available():
        narrow = Learner(small_llama(), optim=OptimConfig(device="cuda"), algorithm=AlgorithmConfig(), pad_token_id=0)
        assert narrow.tree_attention == "segments"  # head_dim 8: FlexAttention's kernels need 16
        wide = Learner(
            small_llama(head_dim=16), optim=OptimConfig(device="cuda"), algorithm=AlgorithmConfig(), pad_token_id=0
        )
        assert wide.tree_attention == "flex"


@pytest.mark.parametrize("attention", ["flex", "varlen"])
def test_gpu_tree_attention_is_refused_off_cuda(attention):
    with pytest.raises(ValueError, match=rf"tree_attention={attention} needs a CUDA learner"):
        Learner(small_llama(), optim=OptimConfig(device="cpu", tree_attention=attention), algorithm=AlgorithmConfig(),
                pad_token_id=0)  # fmt: skip


def flash_varlen_reference(q, k, v, cu_q, cu_k, max_q, max_k, *, scale=None, window_size=(-1, -1), enable_gqa=False):
    """FlashAttention's variable-length causal attention as its documentation states it, on the CPU: each
    sequence's causal mask aligned to the bottom right when it has more keys than queries. (The real kernel
    runs on CUDA only; the gpu-marked test below checks it against segment attention.)"""
    assert window_size == (-1, 0)
    out = []
    for s in range(len(cu_q) - 1):
        qs, ks, vs = (t[c[s] : c[s + 1]].transpose(0, 1) for t, c in ((q, cu_q), (k, cu_k), (v, cu_k)))
        rows, cols = qs.shape[1], ks.shape[1]
        assert rows <= max_q and cols <= max_k
        mask = torch.ones(rows, cols, dtype=torch.bool).tril(cols - rows)
        out.append(
            torch.nn.functional.scaled_dot_product_attention(
                qs, ks, vs, attn_mask=mask, scale=scale, enable_gqa=enable_gqa
            ).transpose(0, 1)
        )
    return torch.cat(out)


@pytest.mark.parametrize("source", ["forked", "recorded"])
def test_varlen_tree_pass_gives_path_by_path_logprobs_and_gradients(source, monkeypatch):
    """The gather, layout and sequence boundaries `with_varlen` hands FlashAttention, with the kernel
    replaced by its documented rule (the one boundary not ours): path-by-path values and gradients."""
    import torch.nn.attention.varlen as varlen_module

    monkeypatch.setattr(varlen_module, "varlen_attn", flash_varlen_reference)
    batch = forked_batch() if source == "forked" else train_sequences(record_trees(2, group_size=4, initial=2, words=8))
    padded = pad_sequences(batch, 0)
    select = padded.mask > 0
    weights = torch.randn(select.shape, generator=torch.Generator().manual_seed(0))
    grads = []
    for packed in (False, True):
        model = small_llama(head_dim=16)
        if packed:
            tree = pack(batch, padded.input_ids.shape[1]).with_varlen()
            out = tree_token_logprobs(model, tree, select)
        else:
            out = token_logprobs(model, padded.input_ids, padded.attention_mask, select=select)
        (out.logprobs * weights * select).sum().backward()
        grads.append((out.logprobs.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])))
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-5, atol=1e-5)
    assert_close_grads(grads[1][1], grads[0][1])


@pytest.mark.gpu
def test_varlen_tree_attention_needs_bf16_on_cuda():
    with pytest.raises(ValueError, match=r"needs optim\.precision bf16"):
        Learner(small_llama(head_dim=16), optim=OptimConfig(device="cuda", tree_attention="varlen", precision="fp32"),
                algorithm=AlgorithmConfig(), pad_token_id=0)  # fmt: skip


def test_varlen_index_lists_each_segment_as_one_sequence():
    """`with_varlen` (made on the CPU here): segment s's queries are pack[cu_q[s]:cu_q[s+1]] and its keys
    keys[cu_k[s]:cu_k[s+1]], and the bottom-right causal rule over them is exactly the tree's mask."""
    batch = train_sequences(record_trees(3, group_size=4, initial=2, words=12))
    tree = pack(batch, pad_sequences(batch, 0).input_ids.shape[1]).with_varlen()
    index = tree.varlen
    assert index is not None and index.cu_q[-1] == tree.length and index.cu_k[-1] == len(tree.keys)
    seen = torch.zeros(tree.length, tree.length, dtype=torch.bool)
    for s in range(len(index.cu_q) - 1):
        q0, q1, k0, k1 = (int(x) for x in (index.cu_q[s], index.cu_q[s + 1], index.cu_k[s], index.cu_k[s + 1]))
        assert q1 - q0 <= index.max_q and k1 - k0 <= index.max_k
        rows, cols = q1 - q0, k1 - k0
        bottom_right = torch.ones(rows, cols, dtype=torch.bool).tril(cols - rows)  # FlashAttention's causal rule
        seen[q0:q1, tree.keys[k0:k1]] = bottom_right
    assert torch.equal(seen, ancestry(tree))


@pytest.mark.gpu
@pytest.mark.parametrize("advantage", ["soft", "hard"])
def test_flex_tree_attention_on_cuda_matches_segment_attention(advantage):
    base = small_llama(layers=2, head_dim=16)
    batch = train_sequences(record_trees(3, group_size=4, initial=2, words=12))
    flex = grads_after_update(copy.deepcopy(base), batch, device="cuda", tree_attention="flex", advantage=advantage)
    segments = grads_after_update(copy.deepcopy(base), copy.deepcopy(batch), device="cuda", tree_attention="segments",
                                  advantage=advantage)  # fmt: skip
    assert_close_grads(flex.cpu(), segments.cpu(), tol=1e-4)
    if advantage == "soft":
        paths = grads_after_update(copy.deepcopy(base), copy.deepcopy(batch), device="cuda", tree_pack=False)
        assert_close_grads(flex.cpu(), paths.cpu(), tol=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("advantage", ["soft", "hard"])
def test_varlen_tree_attention_on_cuda_matches_segment_attention(advantage):
    """FlashAttention computes in bf16 only: both sides run under bf16 autocast, compared at bf16's tolerance."""
    base = small_llama(layers=2, head_dim=16)
    batch = train_sequences(record_trees(3, group_size=4, initial=2, words=12))
    varlen = grads_after_update(copy.deepcopy(base), batch, device="cuda", tree_attention="varlen", precision="bf16",
                                advantage=advantage)  # fmt: skip
    segments = grads_after_update(copy.deepcopy(base), copy.deepcopy(batch), device="cuda", tree_attention="segments",
                                  precision="bf16", advantage=advantage)  # fmt: skip
    assert_close_grads(varlen.cpu(), segments.cpu(), tol=5e-2)
    assert torch.nn.functional.cosine_similarity(varlen, segments, dim=0) > 0.995
