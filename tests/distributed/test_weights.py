"""The learner's published weights: each distinct tensor once, tied ones as aliases, bfloat16 kept exact."""

import pickle

import torch

from arpo_engine.distributed.weights import pack
from tests.toy import small_llama


def test_published_weights_give_back_every_tensor_and_carry_tied_ones_once():
    model = small_llama()
    state = model.state_dict()
    payload = pickle.loads(pickle.dumps(pack(3, state)))  # as a reader gets it out of the object store

    assert payload.version == 3 and len(payload) == len(state)
    assert payload.aliases == {"lm_head.weight": "model.embed_tokens.weight"}
    assert payload.nbytes == sum(t.numel() * 4 for n, t in state.items() if n != "lm_head.weight")
    received = dict(payload.tensors())
    assert received.keys() == state.keys()
    assert all(torch.equal(received[n], state[n]) for n in state)


def test_bfloat16_weights_travel_as_their_bits_and_come_back_exactly():
    weights = {"w": torch.randn(4, 3).to(torch.bfloat16), "b": torch.randn(3)}
    payload = pack(0, weights)
    received = dict(payload.tensors())
    assert received["w"].dtype == torch.bfloat16 and torch.equal(received["w"], weights["w"])
    assert received["b"].dtype == torch.float32 and torch.equal(received["b"], weights["b"])


def test_a_sampler_copies_the_published_weights_into_its_model():
    source, target = small_llama(seed=1), small_llama(seed=2)
    state = target.state_dict()
    with torch.no_grad():
        for name, tensor in pack(1, source.state_dict()).tensors():
            state[name].copy_(tensor)
    assert all(torch.equal(a, b) for a, b in zip(source.parameters(), target.parameters(), strict=True))
