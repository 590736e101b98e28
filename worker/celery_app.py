"""The Celery app. Tasks take ids; what matters lives in the database, so a crashed worker loses nothing.

Queues: `runs` for long training runs, `short` for tool "try it", preflight checks and the playground.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings.dev")

app = Celery("arpo")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["worker"], related_name="tasks")
