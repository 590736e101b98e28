"""`manage.py seed_demo`: the demo account and what it needs to start an ARPO run at once. Idempotent.

- user `demo`, its password generated once and kept in <var>/demo-login.txt (never in the repository);
- the demo task (written by `make demo-data` to var/demo/): its questions (train.jsonl + eval.jsonl),
  search corpus (corpus.jsonl) and SFT demonstrations (sft_tags.jsonl), uploaded through the datasets
  service like any user's files;
- the demo's tools (tools.json), with the limits configs/demo_train.yaml gives them;
- a ready "ARPO demo" run configuration from the demo SFT model, mirroring configs/demo_train.yaml.

Each object is looked up by its name in the demo user's own space and created only when missing, so
`make run` can call this at every start.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from arpo_engine import config_meta
from webapp.core.errors import DomainError
from webapp.core.ownership import owner_for
from webapp.datasets.models import Dataset
from webapp.datasets.services import dataset_create
from webapp.runs.models import Run
from webapp.runs.services import run_create
from webapp.tools.models import Tool
from webapp.tools.services import tool_create

DEMO_USERNAME = "demo"
LOGIN_FILE = "demo-login.txt"
RUN_NAME = "ARPO demo"
BASE_MODEL = "smollm2-135m-demo-sft"
PRESET = "arpo_paper"
DEMO_CONFIG = Path(settings.BASE_DIR) / "configs" / "demo_train.yaml"
PROMPTS = "Demo questions"
CORPUS = "Demo corpus"
SFT = "Demo SFT demonstrations"
# Tool limits a config's `options` may carry that the Tool model stores.
TOOL_LIMITS = ("timeout_s", "memory_mb", "max_output_bytes", "top_k")


def demo_folder() -> Path:
    return Path(settings.VAR_DIR) / "demo"


def demo_password() -> tuple[str, bool]:
    """The stored demo password, or a new one (and True) when there is none yet."""
    path = Path(settings.VAR_DIR) / LOGIN_FILE
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip(), False
    password = secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(password + "\n")
    return password, True


@transaction.atomic
def seed_user() -> tuple[User, bool]:
    password, fresh = demo_password()
    user, created = User.objects.get_or_create(
        username=DEMO_USERNAME, defaults={"email": "demo@example.com", "first_name": "Demo"}
    )
    # A new password file means nobody has seen the old password: the stored one must work. Otherwise a
    # password the user changed stays changed.
    if created or fresh:
        user.set_password(password)
        user.save(update_fields=["password"])
    return user, created


def demo_config() -> dict[str, Any]:
    return yaml.safe_load(DEMO_CONFIG.read_text())


def run_overrides(config: dict[str, Any]) -> dict[str, Any]:
    """configs/demo_train.yaml without the keys the service fills in (model, data paths, tools, folders)."""
    flat = config_meta.flatten({k: v for k, v in config.items() if k != "tools"})
    return {key: value for key, value in flat.items() if key not in config_meta.MANAGED}


def tool_limits(name: str, config: dict[str, Any]) -> dict[str, Any]:
    for tool in config.get("tools", []):
        if tool["name"] == name:
            return {k: v for k, v in (tool.get("options") or {}).items() if k in TOOL_LIMITS}
    return {}


class Command(BaseCommand):
    help = "Create the demo user, dataset, corpus, tools and an 'ARPO demo' run configuration (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        user, created = seed_user()
        self.stdout.write(f"demo user: {'created' if created else 'present'}")
        folder = demo_folder()
        if not (folder / "manifest.json").is_file():
            self.stderr.write(f"No demo task under {folder} (`make demo-data` writes it): no demo data.")
            return
        try:
            self._seed(user, folder)
        except DomainError as exc:
            raise CommandError(f"Could not seed the demo: {exc.message} {exc.fields or ''}".strip()) from exc

    def _dataset(self, user: User, kind: Any, name: str, main: Path, eval_file: Path | None = None) -> Dataset:
        existing = Dataset.objects.filter(owner_user=user, owner_team__isnull=True, kind=kind, name=name).first()
        if existing is not None:
            return existing
        with main.open("rb") as handle:
            eval_handle = eval_file.open("rb") if eval_file else None
            try:
                dataset = dataset_create(
                    user=user, owner=owner_for(user, None), kind=kind, name=name, file=File(handle, name=main.name),
                    eval_file=File(eval_handle, name=eval_file.name) if eval_handle and eval_file else None,
                    description="The demo task: questions about an invented world, answered with search and python.",
                )  # fmt: skip
            finally:
                if eval_handle:
                    eval_handle.close()
        self.stdout.write(f"dataset {name!r}: {dataset.rows} rows")
        return dataset

    def _tools(self, user: User, corpus: Dataset, config: dict[str, Any]) -> list[Tool]:
        tools = []
        for spec in json.loads((demo_folder() / "tools.json").read_text()):
            tool = Tool.objects.filter(owner_user=user, owner_team__isnull=True, name=spec["name"]).first()
            if tool is None:
                tool = tool_create(
                    user=user, name=spec["name"], kind=spec["kind"], schema=spec.get("schema"),
                    description=spec.get("description") or "", corpus=corpus if spec["kind"] == "search" else None,
                    **tool_limits(spec["name"], config),
                )  # fmt: skip
                self.stdout.write(f"tool {tool.name!r}: created")
            tools.append(tool)
        return tools

    def _seed(self, user: User, folder: Path) -> None:
        config = demo_config()
        prompts = self._dataset(user, Dataset.Kind.PROMPTS, PROMPTS, folder / "train.jsonl", folder / "eval.jsonl")
        corpus = self._dataset(user, Dataset.Kind.CORPUS, CORPUS, folder / "corpus.jsonl")
        self._dataset(user, Dataset.Kind.SFT, SFT, folder / "sft_tags.jsonl")
        tools = self._tools(user, corpus, config)
        if Run.objects.filter(owner_user=user, owner_team__isnull=True, name=RUN_NAME).exists():
            return
        # The demo SFT model already had its cold start: the run trains it with RL only (no sft section).
        run = run_create(
            user=user, name=RUN_NAME, preset=PRESET, base_model=BASE_MODEL, dataset=prompts, tools=tools,
            overrides=run_overrides(config),
        )  # fmt: skip
        state = "launchable" if run.launchable else f"not launchable: {run.errors}"
        self.stdout.write(f"run {RUN_NAME!r}: created, {state}")
