"""The transformers and vLLM samplers: stops, budgets, seeds, entropies, EOS and weight updates."""

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from arpo_engine.config import ModelConfig, RolloutConfig
from arpo_engine.entropy import token_entropy
from arpo_engine.rollout.factory import make_sampler
from arpo_engine.rollout.hf_sampler import TransformersSampler
from arpo_engine.rollout.sampler import GenRequest, GenResult
from arpo_engine.rollout.vllm_sampler import VLLMSampler
from tests.test_release_memory import rss

CAPITAL = "What is the capital of France?"
COUNT = "Count from 1 to 10, separated by commas."
STORY = "Tell me a story about a cat."


def chat(tokenizer: object, question: str) -> list[int]:
    return tokenizer.apply_chat_template(  # type: ignore[attr-defined]
        [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=True, return_dict=False
    )


def one(sampler: object, request: GenRequest, *, temperature: float = 1.0, top_p: float = 1.0) -> GenResult:
    return sampler.generate([request], temperature=temperature, top_p=top_p)[0]  # type: ignore[attr-defined]


def exact_entropies(model: torch.nn.Module, prompt: list[int], tokens: list[int]) -> torch.Tensor:
    """Entropy of the model's distribution at every generated position, from one plain forward pass."""
    with torch.no_grad():
        logits = model(torch.tensor([prompt + tokens])).logits[0, len(prompt) - 1 : -1]  # (T, V)
    return token_entropy(logits)


# --- TransformersSampler on the tiny random model ---------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> Iterator[TransformersSampler]:
    sampler = TransformersSampler(tiny_model_dir)
    yield sampler
    sampler.close()


@pytest.fixture(scope="module")
def prompts(tiny: TransformersSampler) -> list[list[int]]:
    """Prompts of different lengths, so batches need left padding."""
    tok = tiny.tokenizer
    return [chat(tok, "hi"), tok.encode("A longer prompt, so that the batch needs quite a lot of padding."), [1]]


def test_transformers_sampler_reports_exact_entropies_and_the_vocabulary(tiny: TransformersSampler) -> None:
    assert tiny.entropy_estimator == "exact"
    assert tiny.vocab_size == 49152
    assert tiny.tokenizer.chat_template


def test_max_tokens_ends_generation_with_finish_reason_length(
    tiny: TransformersSampler, prompts: list[list[int]]
) -> None:
    results = tiny.generate([GenRequest(p, 7 + i, seed=i) for i, p in enumerate(prompts)], temperature=1.0, top_p=1.0)
    for i, r in enumerate(results):
        assert r.finish_reason == "length"
        assert len(r.token_ids) == len(r.entropies) == 7 + i
        assert r.text == tiny.tokenizer.decode(r.token_ids, skip_special_tokens=True)


def test_max_model_len_caps_a_response_that_would_not_fit(tiny_model_dir: Path, prompts: list[list[int]]) -> None:
    sampler = TransformersSampler(tiny_model_dir, max_model_len=len(prompts[0]) + 3)
    result = one(sampler, GenRequest(prompts[0], 50, seed=0))
    assert (len(result.token_ids), result.finish_reason) == (3, "length")
    with pytest.raises(ValueError, match="no room"):
        one(sampler, GenRequest(prompts[0] + [1, 2, 3], 5))


def test_a_stop_string_across_tokens_ends_generation_at_the_token_that_completes_it(
    tiny: TransformersSampler, prompts: list[list[int]]
) -> None:
    free = one(tiny, GenRequest(prompts[0], 40, seed=11))
    decode = tiny.tokenizer.decode
    # A stop string made of the last two characters before token k and the first two it adds.
    for k in range(3, 40):
        before, upto = decode(free.token_ids[:k]), decode(free.token_ids[: k + 1])
        stop = upto[len(before) - 2 : len(before) + 2]
        if upto.startswith(before) and len(upto) - len(before) >= 2 and stop.isprintable() and stop not in before:
            break
    else:
        pytest.fail("no token boundary to put a stop string across")

    stopped = one(tiny, GenRequest(prompts[0], 40, stop=("never-seen", stop), seed=11))
    assert stopped.finish_reason == "stop"
    assert stopped.stop_str == stop
    assert stopped.token_ids == free.token_ids[: k + 1]
    assert stop in stopped.text
    assert stop not in decode(stopped.token_ids[:-1])


def test_a_seeded_request_samples_the_same_tokens_alone_and_in_any_batch(
    tiny: TransformersSampler, prompts: list[list[int]]
) -> None:
    requests = [GenRequest(p, 12, seed=100 + i) for i, p in enumerate(prompts)]
    batched = tiny.generate(requests, temperature=1.0, top_p=0.9)
    alone = [one(tiny, r, top_p=0.9) for r in requests]
    reversed_batch = tiny.generate(requests[::-1], temperature=1.0, top_p=0.9)[::-1]
    assert [r.token_ids for r in batched] == [r.token_ids for r in alone] == [r.token_ids for r in reversed_batch]


def test_different_seeds_sample_different_tokens(tiny: TransformersSampler, prompts: list[list[int]]) -> None:
    a = one(tiny, GenRequest(prompts[0], 12, seed=1))
    b = one(tiny, GenRequest(prompts[0], 12, seed=2))
    assert a.token_ids != b.token_ids


def test_entropies_are_the_exact_entropies_of_a_direct_forward_pass(
    tiny: TransformersSampler, prompts: list[list[int]]
) -> None:
    # Temperature and top-p shape the sampling, not the reported entropy of the model's distribution.
    results = tiny.generate([GenRequest(p, 10, seed=i) for i, p in enumerate(prompts)], temperature=0.7, top_p=0.8)
    for p, r in zip(prompts, results, strict=True):
        expected = exact_entropies(tiny.model, p, r.token_ids)
        torch.testing.assert_close(torch.tensor(r.entropies), expected, atol=1e-4, rtol=1e-4)


def test_temperature_zero_picks_the_argmax_of_a_direct_forward_pass(
    tiny: TransformersSampler, prompts: list[list[int]]
) -> None:
    result = one(tiny, GenRequest(prompts[1], 8), temperature=0.0)
    with torch.no_grad():
        logits = tiny.model(torch.tensor([prompts[1] + result.token_ids])).logits[0, len(prompts[1]) - 1 : -1]
    assert result.token_ids == logits.argmax(-1).tolist()


def test_a_tiny_top_p_keeps_only_the_most_likely_token(tiny: TransformersSampler, prompts: list[list[int]]) -> None:
    greedy = one(tiny, GenRequest(prompts[0], 8), temperature=0.0)
    nucleus = one(tiny, GenRequest(prompts[0], 8, seed=5), temperature=1.0, top_p=1e-6)
    assert nucleus.token_ids == greedy.token_ids


def test_an_eos_token_of_the_model_ends_generation_and_is_kept(
    tiny: TransformersSampler, tiny_model_dir: Path, prompts: list[list[int]], tmp_path: Path
) -> None:
    free = one(tiny, GenRequest(prompts[0], 20, seed=7))
    k = next(i for i in range(3, 20) if free.token_ids[i] not in free.token_ids[:i])
    # A copy of the model whose generation config names a second EOS token: the k-th token sampled.
    model_dir = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    gen_config = json.loads((model_dir / "generation_config.json").read_text())
    gen_config["eos_token_id"] = [gen_config["eos_token_id"], free.token_ids[k]]
    (model_dir / "generation_config.json").write_text(json.dumps(gen_config))

    result = one(TransformersSampler(model_dir), GenRequest(prompts[0], 20, seed=7))
    assert result.finish_reason == "eos"
    assert result.token_ids == free.token_ids[: k + 1]
    assert len(result.entropies) == k + 1


def test_update_weights_changes_what_the_transformers_sampler_generates(
    tiny_model_dir: Path, prompts: list[list[int]]
) -> None:
    sampler = TransformersSampler(tiny_model_dir)
    before = one(sampler, GenRequest(prompts[0], 8), temperature=0.0)
    state = sampler.model.state_dict()
    generator = torch.Generator().manual_seed(0)
    sampler.update_weights((name, t + torch.randn(t.shape, generator=generator)) for name, t in state.items())
    after = one(sampler, GenRequest(prompts[0], 8), temperature=0.0)
    assert after.token_ids != before.token_ids


def test_streamed_requests_on_the_transformers_sampler_come_back_as_one_batch_under_their_keys(
    tiny: TransformersSampler, prompts: list[list[int]]
) -> None:
    requests = [GenRequest(p, 6, seed=20 + i) for i, p in enumerate(prompts)]
    expected = tiny.generate(requests, temperature=1.0, top_p=1.0)
    assert not tiny.continuous_batching
    for i, r in enumerate(requests):
        tiny.submit(f"r{i}", r, temperature=1.0, top_p=1.0)
    with pytest.raises(ValueError, match="already pending"):
        tiny.submit("r0", requests[0], temperature=1.0, top_p=1.0)
    assert tiny.pending() == 3
    got = dict(tiny.step())
    assert tiny.pending() == 0 and tiny.step() == []
    assert [got[f"r{i}"].token_ids for i in range(3)] == [r.token_ids for r in expected]


def test_make_sampler_builds_the_configured_sampler_on_the_resolved_model(tiny_model_dir: Path) -> None:
    sampler = make_sampler(
        ModelConfig(path=str(tiny_model_dir), max_model_len=256), RolloutConfig(sampler="transformers"), seed=0
    )
    assert isinstance(sampler, TransformersSampler)
    assert sampler.max_model_len == 256
    one_at_a_time = make_sampler(
        ModelConfig(path=str(tiny_model_dir)), RolloutConfig(sampler="transformers", max_batch_size=1), seed=0
    )
    assert isinstance(one_at_a_time, TransformersSampler) and one_at_a_time.max_batch_size == 1


# --- The real SmolLM2: transformers sampler, and vLLM against it -------------------------------------


@pytest.fixture(scope="module")
def smol_hf(smollm2_dir: Path) -> Iterator[TransformersSampler]:
    sampler = TransformersSampler(smollm2_dir)
    yield sampler
    sampler.close()


@pytest.fixture(scope="module")
def smol_vllm(smollm2_dir: Path) -> Iterator[VLLMSampler]:
    # A tenth of RAM (less weights) is ample KV cache here and leaves room for tests running beside.
    sampler = VLLMSampler(smollm2_dir, max_model_len=1024, memory_fraction=0.1, entropy_top_k=10, seed=0)
    yield sampler
    sampler.close()


@pytest.mark.slow
def test_transformers_sampler_ends_an_answer_at_the_models_eos_token(smol_hf: TransformersSampler) -> None:
    result = one(smol_hf, GenRequest(chat(smol_hf.tokenizer, CAPITAL), 40), temperature=0.0)
    assert result.finish_reason == "eos"
    assert result.token_ids[-1] == smol_hf.tokenizer.eos_token_id
    assert "Paris" in result.text
    assert "<|im_end|>" not in result.text


@pytest.mark.slow
def test_vllm_sampler_reports_a_topk_estimator_and_the_vocabulary(smol_vllm: VLLMSampler) -> None:
    assert smol_vllm.entropy_estimator == "topk-10"
    assert smol_vllm.vocab_size == 49152
    assert smol_vllm.tokenizer.chat_template


@pytest.mark.slow
def test_vllm_greedy_answer_matches_transformers_and_ends_at_eos(
    smol_vllm: VLLMSampler, smol_hf: TransformersSampler
) -> None:
    request = GenRequest(chat(smol_vllm.tokenizer, CAPITAL), 40)
    from_vllm = one(smol_vllm, request, temperature=0.0)
    assert from_vllm.finish_reason == "eos"
    assert from_vllm.token_ids[-1] == smol_vllm.tokenizer.eos_token_id
    assert from_vllm.token_ids == one(smol_hf, request, temperature=0.0).token_ids


@pytest.mark.slow
def test_vllm_stop_string_ends_generation_and_both_samplers_agree(
    smol_vllm: VLLMSampler, smol_hf: TransformersSampler
) -> None:
    request = GenRequest(chat(smol_vllm.tokenizer, COUNT), 40, stop=("never-seen", "5,"))
    from_vllm = one(smol_vllm, request, temperature=0.0)
    assert (from_vllm.finish_reason, from_vllm.stop_str) == ("stop", "5,")
    assert from_vllm.text.endswith("4, 5,")
    assert "5," not in smol_vllm.tokenizer.decode(from_vllm.token_ids[:-1])
    from_hf = one(smol_hf, request, temperature=0.0)
    assert (from_hf.token_ids, from_hf.stop_str) == (from_vllm.token_ids, "5,")


@pytest.mark.slow
def test_vllm_max_tokens_ends_generation_with_finish_reason_length(smol_vllm: VLLMSampler) -> None:
    result = one(smol_vllm, GenRequest(chat(smol_vllm.tokenizer, STORY), 9, seed=3))
    assert result.finish_reason == "length"
    assert len(result.token_ids) == len(result.entropies) == 9


@pytest.mark.slow
def test_vllm_topk_entropies_are_lower_bounds_of_the_exact_entropies(
    smol_vllm: VLLMSampler, smol_hf: TransformersSampler
) -> None:
    prompt = chat(smol_vllm.tokenizer, STORY)
    results = smol_vllm.generate([GenRequest(prompt, 16, seed=i) for i in range(2)], temperature=1.0, top_p=1.0)
    for r in results:
        exact = exact_entropies(smol_hf.model, prompt, r.token_ids)
        estimate = torch.tensor(r.entropies)
        assert (estimate >= 0).all()
        assert (estimate <= exact + 1e-3).all()  # slack for float rounding in the two engines
        assert estimate.sum() > 0.2 * exact.sum()  # the top 10 hold a good part of the distribution


@pytest.mark.slow
def test_vllm_seeded_batch_larger_than_one_prefill_step_completes(smol_vllm: VLLMSampler) -> None:
    # 48 prompts of ~600 tokens exceed one scheduler step's token budget; with chunked prefill on,
    # vLLM rewound seeded CPU generators and crashed.
    tok = smol_vllm.tokenizer
    long_prompt = chat(tok, STORY + " Please write it slowly." * 120)
    assert 500 < len(long_prompt) < 1000  # 48 of them: well over the 16384-token step budget
    requests = [GenRequest(long_prompt, 3, seed=i) for i in range(48)]
    results = smol_vllm.generate(requests, temperature=1.0, top_p=1.0)
    assert len(results) == 48 and all(1 <= len(r.token_ids) <= 3 for r in results)


def test_vllm_same_seed_gives_the_same_sample_whatever_the_batch(smol_vllm: VLLMSampler) -> None:
    tok = smol_vllm.tokenizer
    request = GenRequest(chat(tok, STORY), 10, seed=42)
    alone = one(smol_vllm, request)
    batched = smol_vllm.generate([GenRequest(chat(tok, COUNT), 6, seed=1), request], temperature=1.0, top_p=1.0)
    assert batched[1].token_ids == alone.token_ids
    assert one(smol_vllm, GenRequest(request.prompt_ids, 10, seed=43)).token_ids != alone.token_ids


@pytest.mark.slow
def test_vllm_prefix_cache_serves_a_repeated_long_prompt(smol_vllm: VLLMSampler) -> None:
    tok = smol_vllm.tokenizer
    prompt = chat(tok, STORY + " The cat is called Tom." * 40)  # over two 128-token cache blocks
    before = smol_vllm.prefix_cache_stats()
    one(smol_vllm, GenRequest(prompt, 2, seed=0))
    one(smol_vllm, GenRequest(prompt + tok.encode(" More."), 2, seed=1))
    after = smol_vllm.prefix_cache_stats()
    assert after["hits"] - before["hits"] >= 256


@pytest.mark.slow
def test_vllm_update_weights_changes_generations_and_matches_transformers_on_the_same_weights(
    smol_vllm: VLLMSampler, smol_hf: TransformersSampler
) -> None:
    request = GenRequest(chat(smol_vllm.tokenizer, CAPITAL), 12)
    original = {name: t.clone() for name, t in smol_hf.model.state_dict().items()}
    before = one(smol_vllm, request, temperature=0.0)
    generator = torch.Generator().manual_seed(0)
    noisy = {name: t + 0.02 * torch.randn(t.shape, generator=generator) for name, t in original.items()}
    try:
        smol_vllm.update_weights(noisy.items())
        smol_hf.update_weights(noisy.items())
        after = one(smol_vllm, request, temperature=0.0)
        assert after.token_ids != before.token_ids
        reference = one(smol_hf, request, temperature=0.0)
        assert after.token_ids[:4] == reference.token_ids[:4]
        assert after.entropies[0] <= reference.entropies[0] + 1e-3
    finally:
        smol_vllm.update_weights(original.items())
        smol_hf.update_weights(original.items())
    assert one(smol_vllm, request, temperature=0.0).token_ids == before.token_ids


@pytest.mark.slow
def test_vllm_update_weights_refuses_a_partial_set_of_weights(
    smol_vllm: VLLMSampler, smol_hf: TransformersSampler
) -> None:
    state = smol_hf.model.state_dict()
    with pytest.raises(ValueError, match="missing"):
        smol_vllm.update_weights([("model.norm.weight", state["model.norm.weight"])])


@pytest.mark.slow
def test_vllm_request_submitted_mid_decode_joins_the_batch_and_samples_as_generate_does(smol_vllm: VLLMSampler) -> None:
    tok = smol_vllm.tokenizer
    story, count = GenRequest(chat(tok, STORY), 24, seed=5), GenRequest(chat(tok, COUNT), 12, seed=6)
    expected = smol_vllm.generate([story, count], temperature=1.0, top_p=1.0)
    assert smol_vllm.continuous_batching
    smol_vllm.submit("story", story, temperature=1.0, top_p=1.0)
    got = dict(smol_vllm.step() + smol_vllm.step() + smol_vllm.step())  # prefill and two tokens
    assert not got and smol_vllm.pending() == 1
    smol_vllm.submit("count", count, temperature=1.0, top_p=1.0)
    steps = 0
    while smol_vllm.pending():
        got.update(smol_vllm.step())
        steps += 1
    assert steps < 24 + 12  # decoded side by side, not one after the other
    for key, want in zip(["story", "count"], expected, strict=True):
        assert got[key].token_ids == want.token_ids
        assert got[key].finish_reason == want.finish_reason
        torch.testing.assert_close(torch.tensor(got[key].entropies), torch.tensor(want.entropies), atol=1e-3, rtol=1e-3)


@pytest.mark.slow
def test_vllm_window_is_reported_mid_decode_and_the_sample_is_what_it_is_without(smol_vllm: VLLMSampler) -> None:
    tok = smol_vllm.tokenizer
    plain = GenRequest(chat(tok, STORY), 40, stop=(".",), seed=9)
    windowed = GenRequest(plain.prompt_ids, 40, stop=(".",), seed=9, window=5)
    (expected,) = smol_vllm.generate([plain], temperature=1.0, top_p=1.0)
    assert len(expected.token_ids) > 5
    smol_vllm.submit("w", windowed, temperature=1.0, top_p=1.0)
    windows, finished, steps_to_window = [], [], None
    while smol_vllm.pending():
        finished += smol_vllm.step()
        windows += smol_vllm.take_windows()
        if windows and steps_to_window is None:
            steps_to_window = len(finished)
            assert smol_vllm.pending() == 1  # reported while the request goes on
    assert [key for key, _ in windows] == ["w"] and steps_to_window == 0
    assert [key for key, _ in finished] == ["w"]
    got = finished[0][1]
    assert got.token_ids == expected.token_ids
    assert (got.finish_reason, got.stop_str, got.text) == (expected.finish_reason, expected.stop_str, expected.text)
    torch.testing.assert_close(torch.tensor(got.entropies), torch.tensor(expected.entropies), atol=1e-3, rtol=1e-3)
    assert windows[0][1] == got.entropies[:5]


@pytest.mark.slow
def test_vllm_abort_drops_one_request_and_the_other_samples_as_it_would_alone(smol_vllm: VLLMSampler) -> None:
    tok = smol_vllm.tokenizer
    keep, drop = GenRequest(chat(tok, COUNT), 12, seed=3), GenRequest(chat(tok, STORY), 24, seed=4)
    (expected,) = smol_vllm.generate([keep], temperature=1.0, top_p=1.0)
    smol_vllm.submit("keep", keep, temperature=1.0, top_p=1.0)
    smol_vllm.submit("drop", drop, temperature=1.0, top_p=1.0)
    finished = smol_vllm.step()  # prefill
    smol_vllm.abort(["drop", "never-submitted"])
    assert smol_vllm.pending() == 1
    while smol_vllm.pending():
        finished += smol_vllm.step()
    assert [key for key, _ in finished] == ["keep"]
    assert finished[0][1].token_ids == expected.token_ids


@pytest.mark.slow
def test_vllm_cancel_drops_pending_requests_and_generate_works_after(smol_vllm: VLLMSampler) -> None:
    request = GenRequest(chat(smol_vllm.tokenizer, STORY), 16, seed=8)
    smol_vllm.submit("a", request, temperature=1.0, top_p=1.0)
    smol_vllm.step()
    with pytest.raises(RuntimeError, match="pending"):
        smol_vllm.generate([request], temperature=1.0, top_p=1.0)
    smol_vllm.cancel()
    assert smol_vllm.pending() == 0 and smol_vllm.step() == []
    assert 1 <= len(one(smol_vllm, request).token_ids) <= 16


@pytest.mark.slow
def test_vllm_release_memory_returns_cache_and_weights_and_the_sampler_works_again(
    smol_vllm: VLLMSampler, smol_hf: TransformersSampler
) -> None:
    request = GenRequest(chat(smol_vllm.tokenizer, STORY), 12, seed=21)
    before = one(smol_vllm, request)
    resident = rss()
    released = smol_vllm.release_memory()  # the KV cache only
    assert released > 256 << 20  # a tenth of RAM less the weights
    low = rss()
    assert resident - low > 0.8 * released
    assert smol_vllm.release_memory() == 0  # already released
    assert one(smol_vllm, request).token_ids == before.token_ids
    assert rss() - low > 0.8 * released  # the request took the cache back, zeroed

    smol_vllm.release_memory()
    resident = rss()
    released = smol_vllm.release_memory(weights=True)
    weights = sum(f.stat().st_size for f in Path(smol_vllm.llm.llm_engine.model_config.model).glob("*.safetensors"))
    assert released > 0.15 * weights  # the parameters still held: embeddings (a fifth here) and norms
    assert resident - rss() > 0.9 * weights  # and the linear kernels' packed copies
    with pytest.raises(RuntimeError, match="update_weights"):
        one(smol_vllm, request)
    smol_vllm.update_weights(smol_hf.model.state_dict().items())
    assert one(smol_vllm, request).token_ids == before.token_ids
    smol_vllm.submit("a", request, temperature=1.0, top_p=1.0)
    try:
        with pytest.raises(RuntimeError, match="being decoded"):
            smol_vllm.release_memory()
    finally:
        smol_vllm.cancel()
