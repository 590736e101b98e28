"""The http tool against a real local server: success, timeout, size cap, allowlist, redirects, secrets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from arpo_engine.config import ConfigError, ToolConfig
from arpo_engine.tools.http import HttpTool
from arpo_engine.tools.registry import build_tool, build_tools
from tests.tools.http_server import LocalServer, local_server

SECRET = "sk-test-7f3a9c2e51"


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with local_server() as s:
        yield s


def http_tool(server: LocalServer, path: str = "/echo", **options: object) -> HttpTool:
    options = {"url": f"{server.base}{path}", "allowed_hosts": ["127.0.0.1"], "allow_private_networks": True, **options}
    tool = build_tool(ToolConfig(name="web", kind="http", options=options), secrets={"X-Api-Key": SECRET})
    assert isinstance(tool, HttpTool)
    return tool


def test_arguments_are_posted_as_json_and_the_answer_is_the_observation(server: LocalServer) -> None:
    result = http_tool(server).run({"input": "hello"})
    assert result.error is None
    assert result.output == '{"you_sent": {"input": "hello"}}'
    assert server.received[0].body == {"input": "hello"}
    assert result.details["status"] == 200


def test_secret_header_reaches_the_server_but_not_the_observation(server: LocalServer) -> None:
    tool = http_tool(server, "/echo-headers")
    result = tool.run({"input": "hi"})
    assert server.received[0].headers["X-Api-Key"] == SECRET
    assert SECRET not in result.output
    assert "[secret]" in result.output
    assert SECRET not in repr(tool) and SECRET not in repr(result)


def test_secrets_are_not_part_of_the_config() -> None:
    with pytest.raises(ConfigError, match="unknown option 'headers'"):
        build_tools([ToolConfig(name="web", kind="http", options={"url": "https://api.example.com", "headers": {}})])


def test_slow_server_becomes_a_timeout_observation(server: LocalServer) -> None:
    result = http_tool(server, "/slow", timeout_s=0.5).run({"input": "x"})
    assert result.error == "timeout"
    assert "0.5 s" in result.output
    assert result.latency_ms < 2500


def test_oversized_response_is_cut_at_the_cap(server: LocalServer) -> None:
    result = http_tool(server, "/big", max_response_bytes=1000).run({"input": "x"})
    assert result.truncated
    assert result.output.startswith("x" * 1000)
    assert "cut at 1000 bytes" in result.output
    assert len(result.output) < 1100


def test_error_status_is_an_observation(server: LocalServer) -> None:
    result = http_tool(server, "/fail").run({"input": "x"})
    assert result.error == "http_status"
    assert result.output == "HTTP 500: boom"


def test_url_outside_the_allowlist_is_refused_when_built() -> None:
    with pytest.raises(ConfigError, match="not in allowed_hosts"):
        build_tools([ToolConfig(name="web", kind="http",
                                options={"url": "https://evil.example.com/x", "allowed_hosts": ["api.example.com"]})])


def test_redirect_to_a_host_off_the_allowlist_is_blocked(server: LocalServer) -> None:
    result = http_tool(server, "/redirect-off").run({"input": "x"})
    assert result.error == "blocked_host"
    assert "example.com" in result.output
    assert [r.path for r in server.received] == ["/redirect-off"]


def test_redirect_within_the_allowlist_is_followed(server: LocalServer) -> None:
    result = http_tool(server, "/redirect-on").run({"input": "x"})
    assert result.error is None
    assert [r.path for r in server.received] == ["/redirect-on", "/echo"]


def test_private_addresses_are_refused_unless_allowed(server: LocalServer) -> None:
    result = http_tool(server, allow_private_networks=False).run({"input": "x"})
    assert result.error == "blocked_host"
    assert server.received == []


def test_unreachable_server_is_a_connection_error_observation() -> None:
    tool = HttpTool("web", url="http://127.0.0.1:9/x", allow_private_networks=True, secret_headers={"A": SECRET})
    result = tool.run({"input": "x"})
    assert result.error == "connection"
    assert SECRET not in result.output


def test_tags_format_argument_is_the_first_required_string_of_the_schema() -> None:
    schema = {"type": "function", "function": {"name": "web", "description": "d", "parameters": {
        "type": "object", "properties": {"n": {"type": "integer"}, "city": {"type": "string"}}, "required": ["city"]}}}
    tool = build_tool(ToolConfig(name="web", kind="http", schema=schema, options={"url": "https://api.example.com/w"}))
    assert tool.primary_argument == "city"


def test_secrets_for_a_kind_without_secrets_are_refused() -> None:
    with pytest.raises(ConfigError, match="take no secrets"):
        build_tools([ToolConfig(name="calc", kind="calculator")], secrets={"calc": {"A": "b"}})
