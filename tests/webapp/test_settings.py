"""Production settings: `check --deploy` is clean, and a missing required variable stops start-up by name.

Each case runs Django in a fresh process with exactly the environment given, as a deployment would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS", "ARPO_SECRETS_KEY")


def prod_environment(**changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ARPO_")) and k not in REQUIRED}
    env.update(
        DJANGO_SETTINGS_MODULE="webapp.settings.prod",
        SECRET_KEY="k" * 20 + "-production-secret-key-with-enough-length-and-variety-0123456789",
        DATABASE_URL="postgres://root@localhost:5432/arpo_prod_check",
        REDIS_URL="redis://127.0.0.1:6379/15",
        ALLOWED_HOSTS="arpo.example.com",
        ARPO_SECRETS_KEY="a-key-for-secrets-at-rest",
    )
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_production_settings_pass_check_deploy_without_a_single_warning() -> None:
    result = manage(["check", "--deploy"], prod_environment())
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output, output
    assert "WARNING" not in output.upper(), output


@pytest.mark.parametrize("name", REQUIRED)
def test_production_start_up_fails_naming_the_missing_variable(name: str) -> None:
    result = manage(["check"], prod_environment(**{name: None}))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"Set the environment variable {name}." in result.stderr


def test_an_empty_required_variable_counts_as_missing() -> None:
    result = manage(["check"], prod_environment(SECRET_KEY=""))
    assert result.returncode != 0
    assert "Set the environment variable SECRET_KEY." in result.stderr


def test_development_settings_start_without_any_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in prod_environment().items() if k not in REQUIRED}
    env.update(DJANGO_SETTINGS_MODULE="webapp.settings.dev", ARPO_VAR_DIR=str(tmp_path))
    result = manage(["check"], env)
    assert result.returncode == 0, result.stderr
