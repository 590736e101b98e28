"""The `arpo` CLI against a live server over real HTTP: it uses only the REST API and a token.

login stores a private token; datasets, tools and runs round-trip through the API; errors print the
server's message (and field errors) and exit non-zero; `tools try` runs on the real Celery worker.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User
from typer.testing import CliRunner

from arpo_cli.main import app
from arpo_engine.config import load_config
from tests.worker.fixtures import CeleryWorker, celery_worker  # noqa: F401  (fixture)
from webapp.datasets.models import Dataset
from webapp.runs.models import Run
from webapp.tools.models import Tool

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "var" / "demo"
PASSWORD = "correct-horse-battery-9"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cli(live_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ARPO_CONFIG_DIR", str(tmp_path / "arpo-config"))
    monkeypatch.setenv("ARPO_URL", live_server.url)
    monkeypatch.delenv("ARPO_TOKEN", raising=False)
    return CliRunner()


@pytest.fixture
def alice(transactional_db: None, settings: Any, tmp_path: Path) -> User:
    settings.MEDIA_ROOT = tmp_path / "media"
    return User.objects.create_user("alice", "alice@example.com", PASSWORD)


def arpo(cli: CliRunner, *args: str) -> Any:
    result = cli.invoke(app, list(args), catch_exceptions=False)
    return result


def _login(cli: CliRunner) -> None:
    result = arpo(cli, "login", "--username", "alice", "--password", PASSWORD)
    assert result.exit_code == 0, result.output


def test_login_stores_a_private_token_and_whoami_uses_it(cli: CliRunner, alice: User, tmp_path: Path) -> None:
    _login(cli)
    creds = tmp_path / "arpo-config" / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert json.loads(creds.read_text())["token"].startswith("arpo_")
    result = arpo(cli, "whoami", "--json")
    assert result.exit_code == 0 and json.loads(result.output)["username"] == "alice"


def test_a_wrong_password_prints_the_servers_message_and_exits_1(cli: CliRunner, alice: User) -> None:
    result = arpo(cli, "login", "--username", "alice", "--password", "nope")
    assert result.exit_code == 1
    assert "Error" in result.output
    assert "Traceback" not in result.output


def test_commands_without_a_login_say_how_to_sign_in(cli: CliRunner, alice: User) -> None:
    result = arpo(cli, "datasets", "list")
    assert result.exit_code == 1 and "arpo login" in result.output


def test_logout_revokes_the_token_on_the_server(cli: CliRunner, alice: User, tmp_path: Path) -> None:
    _login(cli)
    token = json.loads((tmp_path / "arpo-config" / "credentials.json").read_text())["token"]
    assert arpo(cli, "logout").exit_code == 0
    assert not (tmp_path / "arpo-config" / "credentials.json").exists()
    import httpx

    from arpo_cli.client import load_credentials

    response = httpx.get(f"{load_credentials()['url']}/api/v1/me/", headers={"Authorization": f"Token {token}"})
    assert response.status_code == 401


def test_datasets_upload_list_and_show(cli: CliRunner, alice: User) -> None:
    _login(cli)
    result = arpo(cli, "datasets", "upload", str(DEMO / "eval.jsonl"), "--name", "held-out", "--eval-percent", "10")
    assert result.exit_code == 0, result.output
    dataset = Dataset.objects.get(name="held-out")
    assert dataset.owner_user == alice and dataset.eval_rows > 0
    listed = arpo(cli, "datasets", "list", "--json")
    assert [d["name"] for d in json.loads(listed.output)] == ["held-out"]
    shown = arpo(cli, "datasets", "show", str(dataset.pk))
    assert shown.exit_code == 0 and "held-out" in shown.output


def test_a_bad_upload_prints_the_line_errors_and_stores_nothing(
    cli: CliRunner, alice: User, tmp_path: Path
) -> None:
    _login(cli)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok?", "answer": "1"}\n{"question": \n')
    result = arpo(cli, "datasets", "upload", str(bad))
    assert result.exit_code == 1
    assert "line 2" in result.output
    assert not Dataset.objects.exists()


def test_tools_create_list_and_try_on_the_worker(
    cli: CliRunner, alice: User, celery_worker: CeleryWorker  # noqa: F811
) -> None:
    _login(cli)
    created = arpo(cli, "tools", "create", "--name", "calc", "--kind", "calculator", "--json")
    assert created.exit_code == 0, created.output
    tool_id = json.loads(created.output)["id"]
    assert Tool.objects.get(pk=tool_id).owner_user == alice
    assert "calc" in arpo(cli, "tools", "list").output
    tried = arpo(cli, "tools", "try", str(tool_id), "--args", '{"expression": "(3 + 4) * 2^10"}')
    assert tried.exit_code == 0, tried.output
    assert "7168" in tried.output


def test_a_tool_schema_error_is_shown_at_its_field(cli: CliRunner, alice: User, tmp_path: Path) -> None:
    _login(cli)
    spec = tmp_path / "tool.json"
    spec.write_text(json.dumps({"name": "bad-name!", "kind": "calculator"}))
    result = arpo(cli, "tools", "create", "--file", str(spec))
    assert result.exit_code == 1
    assert "name" in result.output
    assert not Tool.objects.exists()


def test_runs_create_with_overrides_show_and_export_a_yaml_the_engine_loads(
    cli: CliRunner, alice: User, tmp_path: Path
) -> None:
    _login(cli)
    up = arpo(cli, "datasets", "upload", str(DEMO / "eval.jsonl"), "--name", "q", "--json")
    dataset_id = json.loads(up.output)["id"]
    tool = json.loads(arpo(cli, "tools", "create", "--name", "python", "--kind", "python", "--json").output)
    result = arpo(
        cli, "runs", "create", "--name", "cli run", "--preset", "arpo_paper",
        "--base-model", "smollm2-135m-demo-sft", "--dataset", str(dataset_id), "--tool", str(tool["id"]),
        "--set", "rollout.group_size=4", "--set", "rollout.initial_samples=2",
    )
    assert result.exit_code == 0, result.output
    run = Run.objects.get(name="cli run")
    assert run.config["rollout"]["group_size"] == 4 and run.config["rollout"]["initial_samples"] == 2
    assert [r["name"] for r in json.loads(arpo(cli, "runs", "list", "--json").output)] == ["cli run"]
    assert json.loads(arpo(cli, "runs", "show", str(run.pk), "--json").output)["id"] == run.pk

    out = tmp_path / "run.yaml"
    assert arpo(cli, "runs", "export", str(run.pk), "-o", str(out)).exit_code == 0
    assert yaml.safe_load(out.read_text())["rollout"]["group_size"] == 4
    assert load_config(out).rollout.group_size == 4


def test_runs_create_reports_a_field_error_from_the_server(cli: CliRunner, alice: User) -> None:
    _login(cli)
    up = arpo(cli, "datasets", "upload", str(DEMO / "eval.jsonl"), "--name", "q", "--json")
    result = arpo(
        cli, "runs", "create", "--name", "typo", "--base-model", "smollm2-135m",
        "--dataset", str(json.loads(up.output)["id"]), "--set", "rollout.no_such_knob=1",
    )
    assert result.exit_code == 1
    assert "no_such_knob" in result.output
    assert not Run.objects.filter(name="typo").exists()
