"""Local development and the embedded default of `make run`: DEBUG, SQLite unless DATABASE_URL is set."""

from __future__ import annotations

import hashlib

from .base import *  # noqa: F403
from .env import env_list, env_str

DEBUG = True
# Development only: a fixed key. Production refuses to start without SECRET_KEY (see prod.py).
SECRET_KEY = env_str("SECRET_KEY", "dev-only-insecure-key-do-not-use-in-production-8f3a1c9e2b7d4e6f")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
# Key for secrets at rest (http tool headers). Development derives one from SECRET_KEY.
ARPO_SECRETS_KEY = env_str("ARPO_SECRETS_KEY", hashlib.sha256(SECRET_KEY.encode()).hexdigest())
