"""How tool calls and results look in the token stream (ARPO_SPEC.md §1).

Two formats, chosen per run:
- `tags` (the paper): `<python>code</python>` -> ` <result>\\n…\\n</result>`; the tag body fills the
  tool's primary argument.
- `hermes` (Qwen/Hermes): `<tool_call>{"name": …, "arguments": {…}}</tool_call>` ->
  `<tool_response>…</tool_response>`, placed where the model's chat template puts a tool message
  (Qwen2.5: the call's turn ends and the response comes in a user turn, then a new assistant turn), so
  a trained checkpoint talks the way its template, and vLLM's tool parser, expect. A template that
  knows no tool messages gets the response inline in the assistant turn.
Both end the answer with `<answer> … \\boxed{X} … </answer>`. The system prompt is generated from the
tools' OpenAI function schemas.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from arpo_engine.tools.base import Tool, ToolCall


@dataclass(frozen=True)
class ParsedCall:
    """The call a model segment ends with; `error` is set when it cannot be executed."""

    call: ToolCall
    error: str | None = None


class CallFormat(Protocol):
    name: str

    def stop_strings(self, tools: Mapping[str, Tool]) -> tuple[str, ...]: ...

    def parse_call(self, text: str, tools: Mapping[str, Tool]) -> ParsedCall | None: ...

    def render_call(self, call: ToolCall, tools: Mapping[str, Tool]) -> str: ...

    def render_result(self, output: str) -> str: ...

    def system_prompt(self, tools: Mapping[str, Tool], instructions: str = "") -> str: ...


_ANSWER_RULES = (
    "Think step by step inside <think> </think>. When you know the answer, write it as "
    "<answer> ... \\boxed{ANSWER} </answer>, with the final answer inside \\boxed{}."
)


def _describe(tool: Tool) -> str:
    fn = tool.schema()["function"]
    return f"- {fn['name']}: {fn.get('description', '').strip()}"


class TagFormat:
    name = "tags"

    def stop_strings(self, tools: Mapping[str, Tool]) -> tuple[str, ...]:
        return tuple(f"</{name}>" for name in tools)

    def parse_call(self, text: str, tools: Mapping[str, Tool]) -> ParsedCall | None:
        stripped = text.rstrip()
        for name, tool in tools.items():
            close = f"</{name}>"
            if not stripped.endswith(close):
                continue
            open_at = stripped.rfind(f"<{name}>")
            raw_start = open_at if open_at >= 0 else max(0, len(stripped) - len(close) - 200)
            raw = stripped[raw_start:]
            if open_at < 0:
                call = ToolCall(name=name, arguments={}, raw=raw)
                return ParsedCall(call, error=f"closing </{name}> without an opening <{name}>")
            body = stripped[open_at + len(name) + 2 : -len(close)].strip()
            return ParsedCall(ToolCall(name=name, arguments={tool.primary_argument: body}, raw=raw))
        return None

    def render_call(self, call: ToolCall, tools: Mapping[str, Tool]) -> str:
        body = call.arguments[tools[call.name].primary_argument]
        return f"<{call.name}>{body}</{call.name}>"

    def render_result(self, output: str) -> str:
        return f" <result>\n{output}\n</result>"

    def system_prompt(self, tools: Mapping[str, Tool], instructions: str = "") -> str:
        lines = [instructions.strip()] if instructions.strip() else []
        lines.append("You can use these tools:")
        lines.extend(_describe(t) for t in tools.values())
        if tools:
            example = next(iter(tools))
            lines.append(
                f"To call a tool, write its input between its tags, e.g. <{example}>input</{example}>. "
                "The result appears between <result> and </result>."
            )
        lines.append(_ANSWER_RULES)
        return "\n".join(lines)


_HERMES_CALL = re.compile(r"<tool_call>((?:(?!<tool_call>).)*?)</tool_call>\s*$", re.DOTALL)
"""The last complete call at the end of the text (the body may not contain another opening tag)."""


INLINE_RESPONSE = ("\n<tool_response>\n", "\n</tool_response>\n")
"""Text before and after a tool's output when the chat template has no say (no tool messages)."""
_PROBE = "\x00TOOL-OUTPUT\x00"


def template_tool_response(tokenizer: Any) -> tuple[str, str] | None:
    """Text before and after a tool's output, from the chat template: what follows a `</tool_call>`.

    Renders a conversation ending in an assistant tool call, with and without a following tool message
    (and the next assistant turn's opening); what the second adds after `</tool_call>` is the wrapper.
    None when the template does not render tool calls and tool messages that way.
    """
    call = {"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}
    head = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [call]}]
    try:
        without = tokenizer.apply_chat_template(head, tokenize=False, add_generation_prompt=False)
        with_tool = tokenizer.apply_chat_template(
            [*head, {"role": "tool", "content": _PROBE}], tokenize=False, add_generation_prompt=True
        )
    except Exception:  # a template that rejects tool messages or tool calls
        return None
    if not isinstance(without, str) or not isinstance(with_tool, str):
        return None
    end = without.rfind("</tool_call>")
    if end < 0:
        return None
    end += len("</tool_call>")
    if with_tool[:end] != without[:end] or with_tool.count(_PROBE) != 1 or _PROBE not in with_tool[end:]:
        return None
    before, after = with_tool[end:].split(_PROBE)
    return before, after


class HermesFormat:
    name = "hermes"

    def __init__(self, response: tuple[str, str] = INLINE_RESPONSE) -> None:
        self.response = response
        """(before, after) the tool output: the chat template's, or INLINE_RESPONSE."""

    def stop_strings(self, tools: Mapping[str, Tool]) -> tuple[str, ...]:
        return ("</tool_call>",)

    def parse_call(self, text: str, tools: Mapping[str, Tool]) -> ParsedCall | None:
        match = _HERMES_CALL.search(text)
        if match is None:
            return None
        raw = match.group(0).strip()
        try:
            payload = json.loads(match.group(1))
        except json.JSONDecodeError as exc:
            return ParsedCall(ToolCall("", {}, raw), error=f"tool call is not valid JSON: {exc.msg}")
        if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
            return ParsedCall(ToolCall("", {}, raw), error='tool call needs a "name" string')
        arguments = payload.get("arguments", {})
        if isinstance(arguments, str):  # some models emit the arguments as a JSON string
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                arguments = None
        if not isinstance(arguments, dict):
            return ParsedCall(ToolCall(payload["name"], {}, raw), error='"arguments" must be an object')
        return ParsedCall(ToolCall(payload["name"], arguments, raw))

    def render_call(self, call: ToolCall, tools: Mapping[str, Tool]) -> str:
        payload = json.dumps({"name": call.name, "arguments": dict(call.arguments)}, ensure_ascii=False)
        return f"<tool_call>\n{payload}\n</tool_call>"

    def render_result(self, output: str) -> str:
        before, after = self.response
        return f"{before}{output}{after}"

    def output_of(self, rendered: str) -> str | None:
        """The tool output inside a rendered result (inline or template form), or None."""
        match = re.search(r"<tool_response>\n?(.*?)\n?</tool_response>", rendered, re.DOTALL)
        return match.group(1) if match else None

    def system_prompt(self, tools: Mapping[str, Tool], instructions: str = "") -> str:
        lines = [instructions.strip()] if instructions.strip() else []
        lines.append("You can call functions. Their signatures, as JSON schema, are inside <tools></tools>:")
        lines.append("<tools>")
        lines.extend(json.dumps(t.schema(), ensure_ascii=False) for t in tools.values())
        lines.append("</tools>")
        lines.append(
            'To call one, write <tool_call>{"name": NAME, "arguments": {…}}</tool_call>. '
            "The result appears between <tool_response> and </tool_response>."
        )
        lines.append(_ANSWER_RULES)
        return "\n".join(lines)


CALL_FORMATS: dict[str, CallFormat] = {"tags": TagFormat(), "hermes": HermesFormat()}


def get_format(name: str, tokenizer: Any = None) -> CallFormat:
    """The call format by name; with the model's tokenizer, `hermes` follows its chat template."""
    try:
        fmt = CALL_FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown call format {name!r} (known: {', '.join(CALL_FORMATS)})") from None
    if isinstance(fmt, HermesFormat) and tokenizer is not None:
        return HermesFormat(template_tool_response(tokenizer) or INLINE_RESPONSE)
    return fmt


def rerender_result(fmt: CallFormat, text: str) -> str:
    """A demonstration's tool result in the form `fmt` renders (SFT trains what the rollout produces)."""
    if isinstance(fmt, HermesFormat):
        output = fmt.output_of(text)
        if output is not None:
            return fmt.render_result(output)
    return text
