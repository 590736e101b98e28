"""The tool registry (ToolConfig -> Tool, schema checks) and the built-in calculator kind."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import arpo_engine.tools as tools_package
from arpo_engine.config import ConfigError, ToolConfig
from arpo_engine.tools import Tool, ToolResult, build_tools
from arpo_engine.tools.base import function_schema
from arpo_engine.tools.calculator import CalculatorTool
from arpo_engine.tools.python_sandbox import PythonTool
from arpo_engine.tools.registry import TOOL_KINDS, register_tool_kind
from arpo_engine.tools.search import SearchTool


@pytest.fixture
def corpus(tmp_path: Path) -> str:
    path = tmp_path / "corpus.txt"
    path.write_text("Paris is the capital of France.\nBerlin is the capital of Germany.\n")
    return str(path)


def calculator() -> Tool:
    return build_tools([ToolConfig(name="calc", kind="calculator")])["calc"]


def test_build_tools_returns_tools_by_name_in_config_order(corpus: str) -> None:
    tools = build_tools(
        [
            ToolConfig(name="search", kind="search", options={"corpus_path": corpus, "top_k": 1}),
            ToolConfig(name="python", kind="python", options={"timeout_s": 3, "memory_mb": 256}),
            ToolConfig(name="calc", kind="calculator"),
        ]
    )
    assert list(tools) == ["search", "python", "calc"]
    assert isinstance(tools["search"], SearchTool) and tools["search"].top_k == 1
    assert isinstance(tools["python"], PythonTool) and tools["python"].limits.memory_mb == 256
    assert isinstance(tools["calc"], CalculatorTool)
    assert all(isinstance(tool, Tool) for tool in tools.values())


def test_built_tools_run_with_their_primary_argument(corpus: str) -> None:
    tools = build_tools(
        [
            ToolConfig(name="search", kind="search", options={"corpus_path": corpus}),
            ToolConfig(name="python", kind="python"),
        ]
    )
    for name, arguments in [("search", "capital of France"), ("python", "print(6 * 7)")]:
        tool = tools[name]
        result = tool.run({tool.primary_argument: arguments})
        assert isinstance(result, ToolResult) and result.error is None
    assert tools["python"].run({"code": "print(6 * 7)"}).output == "42"


def test_default_schema_names_the_tool_and_requires_its_primary_argument() -> None:
    schema = build_tools([ToolConfig(name="py", kind="python")])["py"].schema()
    assert schema["type"] == "function"
    assert schema["function"]["name"] == "py"
    assert schema["function"]["parameters"]["required"] == ["code"]


def test_description_overrides_the_default_description() -> None:
    tool = build_tools([ToolConfig(name="py", kind="python", description="Run maths code.")])["py"]
    assert tool.schema()["function"]["description"] == "Run maths code."


def test_valid_custom_schema_is_used(corpus: str) -> None:
    schema = function_schema(
        "wiki", "Look things up.", {"query": {"type": "string"}, "lang": {"type": "string"}}, ["query"]
    )
    config = ToolConfig(name="wiki", kind="search", schema=schema, options={"corpus_path": corpus})
    assert build_tools([config])["wiki"].schema() == schema


def test_description_overrides_the_custom_schema_description(corpus: str) -> None:
    schema = function_schema("wiki", "Look things up.", {"query": {"type": "string"}}, ["query"])
    config = ToolConfig(
        name="wiki", kind="search", schema=schema, description="Search the wiki.", options={"corpus_path": corpus}
    )
    assert build_tools([config])["wiki"].schema()["function"]["description"] == "Search the wiki."


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"name": "py"}, "must be an OpenAI function tool"),
        (function_schema("python", "", {"code": {"type": "string"}}, ["code"]), "function.name is 'python'"),
        (function_schema("py", "", {"source": {"type": "string"}}, ["source"]), "must include 'code'"),
        (function_schema("py", "", {"code": {"type": "integer"}}, ["code"]), "'code' must have type string"),
        (function_schema("py", "", {"code": {"type": "string"}}, ["other"]), "required must list names"),
        ({"type": "function", "function": {"name": "py", "parameters": []}}, '"type": "object"'),
    ],
)
def test_invalid_custom_schema_is_rejected_with_a_clear_message(schema: Mapping[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_tools([ToolConfig(name="py", kind="python", schema=schema)])


def test_unknown_kind_error_lists_the_known_kinds() -> None:
    config = ToolConfig(name="ftp", kind="ftp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown kind 'ftp' \(known kinds: calculator, http, python, search"):
        build_tools([config])


def test_unknown_option_is_rejected_with_the_known_options() -> None:
    with pytest.raises(ConfigError, match=r"unknown option 'timeout' \(known: cpu_s, max_open_files"):
        build_tools([ToolConfig(name="py", kind="python", options={"timeout": 5})])


def test_option_of_the_wrong_type_is_rejected() -> None:
    with pytest.raises(ConfigError, match="option 'memory_mb' must be int, got '512'"):
        build_tools([ToolConfig(name="py", kind="python", options={"memory_mb": "512"})])


def test_option_out_of_range_is_rejected() -> None:
    with pytest.raises(ConfigError, match="timeout_s must be positive"):
        build_tools([ToolConfig(name="py", kind="python", options={"timeout_s": 0})])


def test_search_without_corpus_path_is_rejected() -> None:
    with pytest.raises(ConfigError, match="option 'corpus_path' is required"):
        build_tools([ToolConfig(name="search", kind="search")])


def test_duplicate_tool_names_are_rejected() -> None:
    configs = [ToolConfig(name="calc", kind="calculator"), ToolConfig(name="calc", kind="calculator")]
    with pytest.raises(ConfigError, match="'calc' is defined twice"):
        build_tools(configs)


class EchoTool:
    primary_argument = "text"

    def __init__(self, name: str) -> None:
        self.name = name

    def schema(self) -> dict[str, Any]:
        return function_schema(self.name, "Echo.", {"text": {"type": "string"}}, ["text"])

    def run(self, arguments: Mapping[str, Any]) -> ToolResult:
        return ToolResult(output=str(arguments.get("text", "")))


@pytest.fixture
def echo_kind() -> Iterator[str]:
    @register_tool_kind("echo")
    def build_echo(config: ToolConfig) -> Tool:
        return EchoTool(config.name)

    yield "echo"
    del TOOL_KINDS["echo"]


def test_one_decorated_factory_adds_a_tool_kind(echo_kind: str) -> None:
    tools = build_tools([ToolConfig(name="say", kind=echo_kind)])  # type: ignore[arg-type]
    assert tools["say"].run({"text": "hello"}).output == "hello"


def test_registering_a_kind_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="'python' is already registered"):
        register_tool_kind("python")(lambda config: CalculatorTool(config.name))


def test_package_reexports_the_protocol_and_build_tools() -> None:
    assert set(tools_package.__all__) == {"Tool", "ToolCall", "ToolResult", "build_tools"}


# The calculator kind


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("2 + 3 * 4", "14"),
        ("(2 + 3) * 4", "20"),
        ("2^10", "1024"),
        ("(3 + 4) * 2^10", "7168"),
        ("-2^2", "-4"),
        ("7 / 2", "3.5"),
        ("7 // 2", "3"),
        ("-3 ** 2", "-9"),
        ("sqrt(16) + log(e)", "5"),
        ("factorial(20)", "2432902008176640000"),
        ("round(pi, 4)", "3.1416"),
        ("max(3, 9, 4) % 5", "4"),
    ],
)
def test_calculator_evaluates_arithmetic(expression: str, value: str) -> None:
    result = calculator().run({"expression": expression})
    assert (result.output, result.error) == (value, None)


def test_calculator_reports_division_by_zero_as_a_math_error() -> None:
    result = calculator().run({"expression": "1 / 0"})
    assert result.error == "math_error"
    assert "division by zero" in result.output


@pytest.mark.parametrize(
    "expression",
    ["__import__('os').system('id')", "open('/etc/passwd')", "(1).__class__", "[1, 2]", "x + 1", "lambda: 1"],
)
def test_calculator_refuses_anything_but_arithmetic(expression: str) -> None:
    result = calculator().run({"expression": expression})
    assert result.error == "bad_arguments"
    assert "not allowed" in result.output


def test_calculator_refuses_huge_powers_without_computing_them() -> None:
    started = time.monotonic()
    result = calculator().run({"expression": "9 ** 9 ** 9"})
    assert time.monotonic() - started < 1
    assert result.error == "bad_arguments"
    assert "too large" in result.output


def test_calculator_reports_syntax_errors() -> None:
    result = calculator().run({"expression": "2 +"})
    assert result.error == "bad_arguments"
    assert "invalid syntax" in result.output
