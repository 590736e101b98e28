"""Tool definitions: schema errors at the field, call-format names, secrets encrypted, scoped configs."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection

from arpo_engine.config import ToolConfig
from webapp.core.errors import DomainError, NotFound
from webapp.tools import services, validation
from webapp.tools.models import Tool
from webapp.tools.selectors import tool_configs_for, tool_secret_headers, tool_secrets_by_name

SECRET = "sk-live-0123456789abcdef"


def python_schema(**code: Any) -> dict[str, Any]:
    schema = validation.default_schema("python", "py")
    schema["function"]["parameters"]["properties"]["code"].update(code)
    return schema


def http_tool(user: User, **kwargs: Any) -> Tool:
    return services.tool_create(user=user, name="web", kind="http", url="https://api.example.com/v1/answer",
                                secret_headers={"X-Api-Key": SECRET}, **kwargs)  # fmt: skip


def test_default_schema_is_filled_in_from_the_engine(alice: User) -> None:
    tool = services.tool_create(user=alice, name="py", kind="python")
    assert tool.schema["function"]["parameters"]["required"] == ["code"]


def test_schema_type_error_is_reported_at_its_path(alice: User) -> None:
    with pytest.raises(DomainError) as caught:
        services.tool_create(user=alice, name="py", kind="python", schema=python_schema(type="strin"))
    assert caught.value.fields["schema"][0].startswith("function.parameters.properties.code.type:")


def test_schema_without_the_primary_argument_is_refused(alice: User) -> None:
    schema = validation.default_schema("python", "py")
    schema["function"]["parameters"]["properties"] = {"source": {"type": "string"}}
    schema["function"]["parameters"]["required"] = []
    with pytest.raises(DomainError) as caught:
        services.tool_create(user=alice, name="py", kind="python", schema=schema)
    assert "function.parameters.properties must include 'code'" in caught.value.fields["schema"][0]


def test_schema_naming_another_tool_is_refused(alice: User) -> None:
    with pytest.raises(DomainError) as caught:
        services.tool_create(user=alice, name="other", kind="python", schema=python_schema())
    assert caught.value.fields["schema"] == ["function.name: is 'py', but the tool is named 'other'."]


@pytest.mark.parametrize("name", ["think", "Answer", "result", "has space", "", "<py>"])
def test_name_unusable_in_every_call_format_is_refused(alice: User, name: str) -> None:
    with pytest.raises(DomainError) as caught:
        services.tool_create(user=alice, name=name, kind="calculator")
    assert "name" in caught.value.fields


def test_name_rules_follow_the_call_format() -> None:
    assert validation.name_problem("get-weather", "hermes") is None
    assert validation.name_problem("get-weather", "tags") is not None
    assert validation.name_problem("answer", "tags") is not None
    assert validation.name_problem("answer", "hermes") is None
    assert validation.name_problem("python_2", "tags") is None


def test_names_are_unique_per_owner(alice: User, bob: User) -> None:
    services.tool_create(user=alice, name="calc", kind="calculator")
    services.tool_create(user=bob, name="calc", kind="calculator")
    with pytest.raises(DomainError, match="already a tool named"):
        services.tool_create(user=alice, name="calc", kind="calculator")


def test_search_tool_needs_a_corpus(alice: User) -> None:
    with pytest.raises(DomainError) as caught:
        services.tool_create(user=alice, name="search", kind="search")
    assert "corpus" in caught.value.fields


def test_http_url_must_be_on_the_allowlist(alice: User) -> None:
    with pytest.raises(DomainError) as caught:
        services.tool_create(user=alice, name="web", kind="http", url="https://a.example.com/x",
                             allowed_hosts=["b.example.com"])  # fmt: skip
    assert "allowed_hosts" in caught.value.fields


def test_secret_headers_are_encrypted_at_rest(alice: User) -> None:
    tool = http_tool(alice)
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_headers_encrypted, secret_header_names FROM tools_tool WHERE id = %s", [tool.pk])
        raw, names = cursor.fetchone()
    assert SECRET not in raw
    assert raw.startswith("gAAAA")  # a Fernet token
    assert SECRET not in str(names)
    assert tool_secret_headers(tool_id=tool.pk) == {"X-Api-Key": SECRET}


def test_bad_header_value_is_refused_without_echoing_it(alice: User) -> None:
    with pytest.raises(DomainError) as caught:
        services.tool_create(user=alice, name="web", kind="http", url="https://api.example.com/x",
                             secret_headers={"X-Key": "abc\r\nInjected: 1"})  # fmt: skip
    assert "Injected" not in str(caught.value.as_dict())


def test_update_without_secrets_keeps_them_and_empty_clears_them(alice: User) -> None:
    tool = http_tool(alice)
    services.tool_update(user=alice, tool=tool, description="Answers questions.")
    assert tool_secret_headers(tool_id=tool.pk) == {"X-Api-Key": SECRET}
    services.tool_update(user=alice, tool=tool, secret_headers={})
    assert tool_secret_headers(tool_id=tool.pk) == {}


def test_tool_configs_keep_the_order_and_carry_no_secrets(alice: User) -> None:
    web = http_tool(alice, timeout_s=5.0)
    calc = services.tool_create(user=alice, name="calc", kind="calculator")
    configs = tool_configs_for(user=alice, tool_ids=[calc.pk, web.pk])
    assert [c.name for c in configs] == ["calc", "web"]
    assert all(isinstance(c, ToolConfig) for c in configs)
    assert configs[1].options["url"] == "https://api.example.com/v1/answer"
    assert configs[1].options["timeout_s"] == 5.0
    assert SECRET not in repr(configs)
    assert tool_secrets_by_name(tool_ids=[calc.pk, web.pk]) == {"web": {"X-Api-Key": SECRET}}


def test_team_tools_reach_teammates_but_not_outsiders(alice: User, bob: User, charlie: User, lab: Any) -> None:
    tool = services.tool_create(user=alice, team="lab", name="calc", kind="calculator")
    assert tool_configs_for(user=bob, tool_ids=[tool.pk])[0].name == "calc"
    with pytest.raises(NotFound):
        tool_configs_for(user=charlie, tool_ids=[tool.pk])
