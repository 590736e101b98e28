"""`manage.py seed_demo` (run by `make run` at every start): the demo account, data, tools and run, once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import call_command

from arpo_engine import config_meta
from webapp.datasets.models import Dataset
from webapp.runs.models import Run
from webapp.tools.models import Tool

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "var" / "demo"

pytestmark = [
    pytest.mark.skipif(not (DEMO / "manifest.json").is_file(), reason="`make demo-data` writes var/demo"),
    # Dataset files move into place on commit and the run reads them, so real commits are needed (the
    # base-model catalogue that a flush empties is put back by tests/conftest.py).
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def var(settings: Any, tmp_path: Path) -> Path:
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    (settings.VAR_DIR / "demo").symlink_to(DEMO)
    return settings.VAR_DIR


def test_seed_demo_creates_a_demo_user_whose_password_is_kept_under_var(var: Path) -> None:
    call_command("seed_demo")
    password = (var / "demo-login.txt").read_text().strip()
    assert len(password) >= 12
    assert authenticate(username="demo", password=password) is not None
    assert (var / "demo-login.txt").stat().st_mode & 0o077 == 0  # readable by its owner only


def test_seed_demo_uploads_the_demo_task_and_its_tools_through_the_services(var: Path) -> None:
    call_command("seed_demo")
    demo = User.objects.get(username="demo")
    datasets = {d.kind: d for d in Dataset.objects.filter(owner_user=demo)}
    assert set(datasets) == {"prompts", "corpus", "sft"}
    assert datasets["prompts"].train_rows > 0 and datasets["prompts"].eval_rows > 0
    assert datasets["prompts"].train_path() is not None and datasets["corpus"].corpus_path() is not None
    tools = {t.name: t for t in Tool.objects.filter(owner_user=demo)}
    assert set(tools) == {"search", "python"}
    assert tools["search"].corpus == datasets["corpus"]


def test_the_demo_run_is_launchable_and_mirrors_configs_demo_train_yaml(var: Path) -> None:
    call_command("seed_demo")
    run = Run.objects.get(name="ARPO demo")
    assert run.launchable, run.errors
    assert run.base_model.slug == "smollm2-135m-demo-sft"
    resolved = config_meta.flatten(run.config)
    wanted = config_meta.flatten(
        {k: v for k, v in yaml.safe_load((ROOT / "configs/demo_train.yaml").read_text()).items() if k != "tools"}
    )
    for key, value in wanted.items():
        if key not in config_meta.MANAGED:
            assert resolved[key] == value, key
    assert [t["name"] for t in run.config["tools"]] == ["search", "python"]
    assert run.config["tools"][1]["options"]["timeout_s"] == 10


def test_a_second_seed_demo_changes_nothing(var: Path) -> None:
    call_command("seed_demo")
    password = (var / "demo-login.txt").read_text()
    counts = (User.objects.count(), Dataset.objects.count(), Tool.objects.count(), Run.objects.count())
    call_command("seed_demo")
    assert (User.objects.count(), Dataset.objects.count(), Tool.objects.count(), Run.objects.count()) == counts
    assert (var / "demo-login.txt").read_text() == password
    assert authenticate(username="demo", password=password.strip()) is not None


def test_a_password_the_demo_user_changed_stays_changed(var: Path) -> None:
    call_command("seed_demo")
    demo = User.objects.get(username="demo")
    demo.set_password("changed-by-the-user-123")
    demo.save()
    call_command("seed_demo")
    assert authenticate(username="demo", password="changed-by-the-user-123") is not None
