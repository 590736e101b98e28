"""Settings from the environment: small helpers that fail loudly at start-up.

A production setting that is missing raises `ImproperlyConfigured` naming the variable, so a
misconfigured deployment stops at boot instead of serving with a default that was never meant for it.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

_REQUIRED = object()


def env_str(name: str, default: str | object = _REQUIRED) -> str:
    value = os.environ.get(name)
    if value is None or value == "":
        if default is _REQUIRED:
            raise ImproperlyConfigured(f"Set the environment variable {name}.")
        return str(default)
    return value


def env_int(name: str, default: int | object = _REQUIRED) -> int:
    raw = env_str(name, default if default is _REQUIRED else str(default))
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}.") from None


def env_bool(name: str, default: bool) -> bool:
    raw = env_str(name, "1" if default else "0").strip().lower()
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}.")


def env_list(name: str, default: list[str] | object = _REQUIRED) -> list[str]:
    raw = env_str(name, "" if default is not _REQUIRED else _REQUIRED)
    if raw == "" and isinstance(default, list):
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]
