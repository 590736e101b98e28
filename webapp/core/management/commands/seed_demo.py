"""`manage.py seed_demo`: the demo account and what it needs to start an ARPO run at once. Idempotent.

- user `demo`, its password generated once and kept in <var>/demo-login.txt (never in the repository);
- the demo dataset (var/demo/train.jsonl + eval.jsonl), its search corpus and SFT demonstrations;
- the demo's tools (var/demo/tools.json);
- a ready "ARPO demo" run configuration from the demo SFT model, mirroring configs/demo_train.yaml.

`make run` runs it at every start; a second run finds everything in place and changes nothing.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from django.db import transaction

DEMO_USERNAME = "demo"
LOGIN_FILE = "demo-login.txt"


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


class Command(BaseCommand):
    help = "Create the demo user, dataset, corpus, tools and an 'ARPO demo' run configuration (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        _user, created = seed_user()
        self.stdout.write(f"demo user: {'created' if created else 'present'}")
        if not (demo_folder() / "manifest.json").is_file():
            self.stderr.write(f"No demo task under {demo_folder()} (`make demo-data` writes it): no demo data.")
            return
