"""The test suite: PostgreSQL and Redis on localhost (PRODUCT.md), fast hashing, eager nothing.

DATABASE_URL and REDIS_URL may point elsewhere; pytest-django creates `test_<name>` from DATABASE_URL.
"""

from __future__ import annotations

import os

os.environ.setdefault("DATABASE_URL", "postgres://root@localhost:5432/arpo")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/5")

from .dev import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_AUTOREFRESH = True  # tests run without collectstatic
ARPO_HTTP_TOOLS_ALLOW_PRIVATE = True  # http tool tests talk to a server on 127.0.0.1
# knox's first migration creates knox_authtoken even though KNOX_TOKEN_MODEL swaps it out; that table's
# foreign key to auth_user makes the TRUNCATE of transactional tests (e.g. with a real worker) fail.
MIGRATION_MODULES = {"knox": None}
