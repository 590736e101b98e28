"""The web app boots, answers health checks and renders errors in the one API error shape."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_healthz_answers_ok(client: Client) -> None:
    assert client.get("/healthz").json() == {"ok": True}


def test_unknown_api_path_is_json_404(client: Client) -> None:
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_engine_config_imports_without_heavy_packages() -> None:
    import subprocess
    import sys

    code = (
        "import sys, arpo_engine.config, webapp.settings.base;"
        "heavy = {'torch', 'ray', 'vllm', 'transformers'} & set(sys.modules);"
        "print(sorted(heavy)); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
