"""Request rates per caller (an agent token): a fixed one-minute window counted in the cache,
so every web process shares it (Redis in production)."""

from __future__ import annotations

import time

from django.core.cache import cache


class RateLimited(Exception):
    """Too many requests; ``retry_after`` is the seconds until the window turns."""

    def __init__(self, retry_after: int, limit: int) -> None:
        super().__init__(f"At most {limit} requests a minute; retry in {retry_after} s.")
        self.retry_after = retry_after
        self.limit = limit


def rate_check(*, key: str, limit: int, window: int = 60) -> None:
    """Count one request for ``key``; raise RateLimited past ``limit`` in this window."""
    if limit <= 0:
        return
    now = time.time()
    slot = int(now // window)
    counter = f"rate:{key}:{slot}"
    cache.add(counter, 0, timeout=window + 5)
    try:
        count = cache.incr(counter)
    except ValueError:  # the counter expired between add and incr
        cache.set(counter, 1, timeout=window + 5)
        count = 1
    if count > limit:
        raise RateLimited(retry_after=max(1, int((slot + 1) * window - now) + 1), limit=limit)
