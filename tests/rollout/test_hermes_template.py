"""The hermes call format puts tool responses where the model's chat template puts tool messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from arpo_engine.rollout.agent import build_prompt_ids
from arpo_engine.rollout.formats import INLINE_RESPONSE, get_format, template_tool_response
from arpo_engine.sft import encode_demo

# A ChatML template that handles tools the way Qwen2.5's does (written for this test): an assistant
# turn's tool calls as <tool_call> JSON, tool messages grouped in a user turn inside <tool_response>.
QWEN_STYLE_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message.role == 'assistant' and message.tool_calls %}"
    "{{- '<|im_start|>assistant' }}{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}"
    "{%- for tc in message.tool_calls %}{%- set f = tc.function %}"
    "{{- '\\n<tool_call>\\n{\"name\": \"' + f.name + '\", \"arguments\": ' + (f.arguments | tojson) + '}\\n</tool_call>' }}"
    "{%- endfor %}{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- else %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


@pytest.fixture(scope="module")
def qwen_style_tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = QWEN_STYLE_TEMPLATE
    return tokenizer


def test_hermes_response_follows_a_template_that_puts_it_in_a_user_turn(qwen_style_tokenizer: Any) -> None:
    fmt = get_format("hermes", qwen_style_tokenizer)
    assert fmt.render_result("42") == (
        "<|im_end|>\n<|im_start|>user\n<tool_response>\n42\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    )


def test_a_rollout_context_after_a_call_is_what_the_chat_template_renders_for_that_conversation(
    qwen_style_tokenizer: Any,
) -> None:
    fmt = get_format("hermes", qwen_style_tokenizer)
    _, prompt_text = build_prompt_ids(qwen_style_tokenizer, [{"role": "user", "content": "2+2?"}], "sys")
    arguments = {"expression": "2+2"}
    call_text = "<tool_call>\n" + json.dumps({"name": "calc", "arguments": arguments}) + "\n</tool_call>"
    context = prompt_text + call_text + fmt.render_result("4")
    conversation = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "calc", "arguments": arguments}}]},
        {"role": "tool", "content": "4"},
    ]  # fmt: skip
    assert context == qwen_style_tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)


def test_a_template_without_tool_messages_keeps_the_response_inline(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    smollm2 = AutoTokenizer.from_pretrained(tiny_model_dir)  # SmolLM2's template knows no tool calls
    assert template_tool_response(smollm2) is None
    assert get_format("hermes", smollm2).render_result("42") == INLINE_RESPONSE[0] + "42" + INLINE_RESPONSE[1]


def test_sft_trains_tool_results_in_the_templates_form(qwen_style_tokenizer: Any) -> None:
    fmt = get_format("hermes", qwen_style_tokenizer)
    inline = '<tool_call>{"name": "calc", "arguments": {}}</tool_call>\n<tool_response>\n4\n</tool_response>\n'
    content = inline + "<answer>\\boxed{4}</answer>"
    start = content.index("\n<tool_response>")
    end = content.index("</tool_response>\n") + len("</tool_response>\n")
    messages = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": content}]
    example = encode_demo(qwen_style_tokenizer, messages, [(start, end)], "sys", fmt)
    masked = [t for t, m in zip(example.response_ids, example.mask, strict=True) if m == 0]
    assert qwen_style_tokenizer.decode(masked) == fmt.render_result("4")


def test_a_trajectory_in_the_templates_form_passes_the_format_check(qwen_style_tokenizer: Any) -> None:
    from arpo_engine.rewards.format import check_format

    fmt = get_format("hermes", qwen_style_tokenizer)
    text = (
        '<think>add</think><tool_call>\n{"name": "calc", "arguments": {}}\n</tool_call>'
        + fmt.render_result("4")
        + "<think>so 4</think><answer>\\boxed{4}</answer>"
    )
    check = check_format(text, call_format="hermes")
    assert check.ok, check.error
    assert (check.tool_calls, check.boxed) == (1, "4")
