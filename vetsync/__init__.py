from __future__ import annotations

from vetsync.celery import app as celery_app

__all__ = ("celery_app",)
