"""Celery tasks for clinics. Thin doors onto services: ids in, load, call, safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

WORKER_HEARTBEAT_KEY = "vetsync:worker-heartbeat"


@shared_task
def record_worker_heartbeat() -> str:
    """Beat sends this every minute; the dashboard shows when a worker last answered."""
    stamp = timezone.now().isoformat()
    cache.set(WORKER_HEARTBEAT_KEY, stamp, timeout=None)
    return stamp
