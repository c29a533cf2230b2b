"""The client's own side of ezyVet's rate limits: sliding windows per site and per endpoint."""

from __future__ import annotations

import threading
from collections.abc import Callable


class SlidingWindowLimiter:
    """At most ``limit`` calls in any ``window`` seconds, as the server counts them.

    A token bucket refilled at limit/window would allow up to twice the limit in one window
    after an idle spell, which a sliding-window server answers with 429s. Each slot is held
    until ``window`` seconds after its call *finished*: the server saw the call no later
    than that, so latency can never make two calls look closer together to it than to us.
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.slots: list[list[float]] = []

    def delay(self, now: float) -> float:
        self.slots = [slot for slot in self.slots if slot[0] > now - self.window]
        if self.limit <= 0 or len(self.slots) < self.limit:
            return 0.0
        stamps = sorted(slot[0] for slot in self.slots)
        return stamps[len(stamps) - self.limit] + self.window - now

    def take(self, now: float) -> list[float]:
        slot = [now]
        self.slots.append(slot)
        return slot


class RateLimiter:
    """The site-wide and per-endpoint limits together; ``acquire`` waits until both allow."""

    def __init__(
        self,
        *,
        rate: int,
        endpoint_rate: int,
        window: float,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.rate = rate
        self.endpoint_rate = endpoint_rate
        self.window = window
        self.clock = clock
        self.sleep = sleep
        self.site = SlidingWindowLimiter(rate, window)
        self.endpoints: dict[str, SlidingWindowLimiter] = {}
        self.lock = threading.Lock()
        self.waited = 0.0

    def acquire(self, endpoint: str) -> tuple[list[float], list[float]]:
        limiter = self.endpoints.setdefault(
            endpoint, SlidingWindowLimiter(self.endpoint_rate, self.window)
        )
        while True:
            with self.lock:
                now = self.clock()
                wait = max(self.site.delay(now), limiter.delay(now))
                if wait <= 0:
                    return self.site.take(now), limiter.take(now)
            self.waited += wait
            self.sleep(wait)

    def finish(self, slots: tuple[list[float], list[float]]) -> None:
        with self.lock:
            now = self.clock()
            for slot in slots:
                slot[0] = now
