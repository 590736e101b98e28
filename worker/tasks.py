"""Celery tasks: ids in, one call out. Service and engine code is imported inside task bodies."""

from __future__ import annotations
