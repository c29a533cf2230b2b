"""Heartbeats per Celery queue: beat sends ``queue_heartbeat`` through every queue every 30 s
and the worker that takes it stamps the time in the cache (Redis in production). A queue whose
stamp ages has no worker; every queue's stamp ageing means beat itself stopped."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache

KEY = "vetsync:queue-heartbeat:{queue}"


def heartbeat_record(queue: str, *, now: float | None = None) -> float:
    stamp = time.time() if now is None else now
    cache.set(KEY.format(queue=queue), stamp, timeout=None)
    return stamp


def heartbeat_ages(*, now: float | None = None) -> dict[str, float | None]:
    """Seconds since each queue's last heartbeat (None: never seen)."""
    now = time.time() if now is None else now
    stamps = cache.get_many([KEY.format(queue=q) for q in settings.CELERY_QUEUES_ALL])
    ages: dict[str, float | None] = {}
    for queue in settings.CELERY_QUEUES_ALL:
        stamp = stamps.get(KEY.format(queue=queue))
        ages[queue] = max(now - float(stamp), 0.0) if isinstance(stamp, int | float) else None
    return ages


def beat_age(ages: dict[str, float | None]) -> float | None:
    """Beat is alive as long as any queue's heartbeat is young: the youngest age."""
    seen = [age for age in ages.values() if age is not None]
    return min(seen) if seen else None
