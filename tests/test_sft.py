"""SFT cold start: demonstrations are tokenised like rollouts, tool results masked, and the loss falls."""

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from arpo_engine.config import SFTConfig
from arpo_engine.models import build_tiny_model
from arpo_engine.pipeline import load_policy
from arpo_engine.sft import encode_demo, run_sft, sft_loss

RESULT = " <result>\n42\n</result>"
TRAJECTORY = f"<think>compute</think>\n<python>print(6*7)</python>{RESULT}\n<answer>\\boxed{{42}}</answer>"
MESSAGES = [
    {"role": "system", "content": "the demo's own system prompt, replaced by the run's"},
    {"role": "user", "content": "What is six times seven?"},
    {"role": "assistant", "content": TRAJECTORY},
]
SPAN = (TRAJECTORY.index(RESULT), TRAJECTORY.index(RESULT) + len(RESULT))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("sft") / "model", seed=0)


def test_demo_tool_results_are_masked_and_eos_is_trained(tiny: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny)
    example = encode_demo(tok, MESSAGES, [SPAN], "RUN SYSTEM PROMPT")
    masked = [t for t, m in zip(example.response_ids, example.mask, strict=True) if m == 0]
    assert tok.decode(masked) == RESULT
    assert example.response_ids[-1] == tok.eos_token_id and example.mask[-1] == 1
    prompt = tok.decode(example.prompt_ids)
    assert "RUN SYSTEM PROMPT" in prompt and "the demo's own system prompt" not in prompt
    assert "six times seven" in prompt


def test_sft_lowers_the_loss_on_its_demonstrations(tiny: Path) -> None:
    model, tok = load_policy(tiny)
    examples = [encode_demo(tok, MESSAGES, [SPAN], "system") for _ in range(2)]
    before = float(sft_loss(model, examples, tok.eos_token_id)[0].detach())
    history = run_sft(model, examples, SFTConfig(epochs=40, lr=3e-3, batch_size=2), pad_id=tok.eos_token_id)
    after = float(sft_loss(model, examples, tok.eos_token_id)[0].detach())
    assert len(history) == 40
    assert after < 0.5 * before


def test_a_demo_that_does_not_end_with_the_assistant_is_refused(tiny: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny)
    with pytest.raises(ValueError, match="assistant"):
        encode_demo(tok, MESSAGES[:2], [], "system")
