"""Tools over the API and in pages: secrets never come back, outsiders get 404, errors at the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from tests.webapp.conftest import PASSWORD
from webapp.tools import services
from webapp.tools.models import Tool, ToolTrial

SECRET = "sk-live-0123456789abcdef"
ApiFor = Callable[[User | None], APIClient]


@pytest.fixture
def web_tool(alice: User) -> Tool:
    return services.tool_create(user=alice, name="web", kind="http", url="https://api.example.com/v1/answer",
                                secret_headers={"Authorization": f"Bearer {SECRET}"})  # fmt: skip


def browser(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_create_over_the_api_returns_header_names_but_never_values(alice: User, api_for: ApiFor) -> None:
    response = api_for(alice).post("/api/v1/tools/", {
        "name": "web", "kind": "http", "url": "https://api.example.com/v1/answer",
        "secret_headers": {"Authorization": f"Bearer {SECRET}"}}, format="json")  # fmt: skip
    assert response.status_code == 201, response.content
    assert response.json()["secret_header_names"] == ["Authorization"]
    assert response.json()["has_secrets"] is True
    assert SECRET not in response.content.decode()


def test_no_api_response_or_page_shows_the_secret(alice: User, api_for: ApiFor, web_tool: Tool) -> None:
    api = api_for(alice)
    bodies = [
        api.get("/api/v1/tools/").content, api.get(f"/api/v1/tools/{web_tool.pk}/").content,
        api.patch(f"/api/v1/tools/{web_tool.pk}/", {"description": "Asks."}, format="json").content,
        api.get("/api/schema/").content,
    ]  # fmt: skip
    page = browser(alice)
    for url in ("/tools/", f"/tools/{web_tool.pk}/", f"/tools/{web_tool.pk}/edit/", f"/tools/{web_tool.pk}/delete/"):
        response = page.get(url)
        assert response.status_code == 200, url
        bodies.append(response.content)
    assert all(SECRET.encode() not in body for body in bodies)
    assert b"Authorization" in bodies[-3]  # the names are shown


def test_page_form_with_an_error_does_not_send_the_typed_secret_back(alice: User) -> None:
    response = browser(alice).post("/tools/new/?kind=http", {
        "name": "think", "schema": "{}", "url": "https://api.example.com/x", "secret_headers": f"X-Key: {SECRET}"})  # fmt: skip
    assert response.status_code == 200
    assert b"already uses" in response.content
    assert SECRET.encode() not in response.content
    assert not Tool.objects.exists()


def test_schema_error_comes_back_at_the_field(alice: User, api_for: ApiFor) -> None:
    schema = {"type": "function", "function": {"name": "py", "description": "d", "parameters": {
        "type": "object", "properties": {"code": {"type": "strin"}}, "required": ["code"]}}}
    response = api_for(alice).post("/api/v1/tools/", {"name": "py", "kind": "python", "schema": schema}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert body["fields"]["schema"][0].startswith("function.parameters.properties.code.type:")


def test_page_defines_a_tool_with_the_prefilled_defaults(alice: User) -> None:
    page = browser(alice)
    form = page.get("/tools/new/?kind=calculator")
    assert b"&quot;expression&quot;" in form.content
    import json

    from webapp.tools.validation import default_schema

    response = page.post("/tools/new/?kind=calculator",
                         {"name": "calc", "schema": json.dumps(default_schema("calculator", "calc"))})  # fmt: skip
    tool = Tool.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/tools/{tool.pk}/"
    assert tool.kind == "calculator" and tool.owner_user == alice


def test_try_rejects_arguments_that_do_not_match_the_schema(alice: User, api_for: ApiFor) -> None:
    tool = services.tool_create(user=alice, name="calc", kind="calculator")
    response = api_for(alice).post(f"/api/v1/tools/{tool.pk}/try/", {"arguments": {"expression": 3}}, format="json")
    assert response.status_code == 400
    assert "arguments" in response.json()["fields"]
    assert not ToolTrial.objects.exists()


@pytest.mark.parametrize("method, suffix", [("get", ""), ("patch", ""), ("delete", ""), ("post", "try/")])
def test_outsider_gets_404_from_the_tool_api(
    charlie: User, api_for: ApiFor, web_tool: Tool, method: str, suffix: str
) -> None:
    response = getattr(api_for(charlie), method)(f"/api/v1/tools/{web_tool.pk}/{suffix}", {}, format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert Tool.objects.filter(pk=web_tool.pk).exists()


def test_outsider_gets_404_for_a_trial(alice: User, charlie: User, api_for: ApiFor, web_tool: Tool) -> None:
    trial = ToolTrial.objects.create(tool=web_tool, arguments={"input": "x"}, created_by=alice)
    assert api_for(charlie).get(f"/api/v1/tools/{web_tool.pk}/trials/{trial.pk}/").status_code == 404
    assert api_for(alice).get(f"/api/v1/tools/{web_tool.pk}/trials/{trial.pk}/").status_code == 200


@pytest.mark.parametrize("suffix", ["", "edit/", "delete/"])
def test_outsider_gets_404_on_tool_pages(charlie: User, web_tool: Tool, suffix: str) -> None:
    assert browser(charlie).get(f"/tools/{web_tool.pk}/{suffix}").status_code == 404


def test_outsider_cannot_try_a_tool_from_the_page(charlie: User, web_tool: Tool) -> None:
    assert browser(charlie).post(f"/tools/{web_tool.pk}/try/", {"arguments": "{}"}).status_code == 404
    assert not ToolTrial.objects.exists()


def test_teammate_sees_the_team_tool(alice: User, bob: User, lab: Any, api_for: ApiFor) -> None:
    tool = services.tool_create(user=alice, team="lab", name="calc", kind="calculator")
    assert api_for(bob).get(f"/api/v1/tools/{tool.pk}/").json()["owner"] == "Lab"


def test_a_trial_no_worker_picked_up_says_what_to_check(alice: User, web_tool: Tool) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from webapp.tools.views import TRIAL_STALLED_S

    trial = ToolTrial.objects.create(tool=web_tool, arguments={"input": "x"}, created_by=alice)
    page = browser(alice).get(f"/tools/{web_tool.pk}/?trial={trial.pk}").content.decode()
    assert 'data-field="stalled" hidden' in page  # just queued: nothing to worry about yet
    ToolTrial.objects.filter(pk=trial.pk).update(created_at=timezone.now() - timedelta(seconds=TRIAL_STALLED_S + 1))
    page = browser(alice).get(f"/tools/{web_tool.pk}/?trial={trial.pk}").content.decode()
    assert 'data-field="stalled" hidden' not in page
    assert "No worker has picked this call up yet" in page and "short</code> queue" in page
    ToolTrial.objects.filter(pk=trial.pk).update(status=ToolTrial.Status.DONE, output="ok")
    page = browser(alice).get(f"/tools/{web_tool.pk}/?trial={trial.pk}").content.decode()
    assert 'data-field="stalled" hidden' in page
