"""One ezyVet site's rate limits shared by every process and machine that calls it.

ezyVet counts a site's calls in a sliding window (180 a minute per site, 60 per endpoint): N
worker processes each keeping to the limit on their own send N times the budget. Here every
call first takes a slot of the site and of its endpoint in a shared store:

- ``LimitsBackend``: the ``limits`` package's moving window (Redis in production: an atomic
  Lua script per hit), or any other storage URI it knows;
- ``FileBackend``: the same windows in a small JSON file under an exclusive ``flock``, for a
  single machine without Redis (`make run`); it never touches the application's database.

Writebacks come first within a site's budget: once a writeback has had to wait for the site's
budget (not its endpoint's), pulls leave ``reserve`` slots of the site's window free for
writebacks for a window. A small safety
margin (``margin`` seconds added to the window) covers the time between taking a slot here and
the call reaching ezyVet. A 429 is still honoured by the transport (``Retry-After``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

WRITEBACK = "writeback"
PULL = "pull"


class WindowBackend(Protocol):
    """Moving windows by key: at most ``limit`` hits in any ``window`` seconds."""

    def hit(self, key: str, limit: int, window: float) -> bool: ...

    def stats(self, key: str, limit: int, window: float) -> tuple[int, float]:
        """(slots left, seconds until the oldest hit leaves the window)."""
        ...

    def mark(self, key: str, ttl: float) -> None: ...

    def marked(self, key: str) -> bool: ...


class LimitsBackend:
    """The ``limits`` package's moving window on a shared storage (``redis://…``)."""

    def __init__(self, storage_uri: str, *, prefix: str = "vetsync-ezyvet") -> None:
        from limits.storage import storage_from_string
        from limits.strategies import MovingWindowRateLimiter

        options = {"key_prefix": prefix} if storage_uri.startswith(("redis", "rediss")) else {}
        self.storage = storage_from_string(storage_uri, **options)
        self.strategy = MovingWindowRateLimiter(self.storage)

    @staticmethod
    def _item(limit: int, window: float):  # type: ignore[no-untyped-def]
        from limits import RateLimitItemPerSecond

        return RateLimitItemPerSecond(limit, max(math.ceil(window), 1))  # whole seconds

    def hit(self, key: str, limit: int, window: float) -> bool:
        return bool(self.strategy.hit(self._item(limit, window), key))

    def stats(self, key: str, limit: int, window: float) -> tuple[int, float]:
        reset, remaining = self.strategy.get_window_stats(self._item(limit, window), key)
        return int(remaining), max(float(reset) - time.time(), 0.0)

    def mark(self, key: str, ttl: float) -> None:
        self.storage.clear(f"mark/{key}")  # incr sets the expiry only on a new key
        self.storage.incr(f"mark/{key}", max(math.ceil(ttl), 1))

    def marked(self, key: str) -> bool:
        return bool(self.storage.get(f"mark/{key}"))


class FileBackend:
    """Moving windows in one JSON file per directory, read and written under ``flock``."""

    def __init__(self, directory: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(directory) / "ezyvet-windows.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, list[float]]]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                text = handle.read()
                try:
                    state = json.loads(text) if text.strip() else {}
                except ValueError:
                    state = {}  # a torn file from a crash: the windows start empty
                yield state
                self._forget_old(state)
                handle.seek(0)
                handle.truncate()
                handle.write(json.dumps(state))
                handle.flush()
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _forget_old(self, state: dict[str, list[float]]) -> None:
        """Sites not called for an hour (and expired marks) leave the file."""
        horizon = self.clock() - 3600
        for key in [k for k, hits in state.items() if not hits or max(hits) < horizon]:
            del state[key]

    def _live(self, state: dict[str, list[float]], key: str, window: float) -> list[float]:
        now = self.clock()
        hits = [t for t in state.get(key, []) if t > now - window]
        state[key] = hits
        return hits

    def hit(self, key: str, limit: int, window: float) -> bool:
        with self._locked() as state:
            hits = self._live(state, key, window)
            if len(hits) >= limit:
                return False
            hits.append(self.clock())
            return True

    def stats(self, key: str, limit: int, window: float) -> tuple[int, float]:
        with self._locked() as state:
            hits = sorted(self._live(state, key, window))
        if len(hits) < limit:
            return limit - len(hits), 0.0
        return 0, max(hits[len(hits) - limit] + window - self.clock(), 0.0)

    def mark(self, key: str, ttl: float) -> None:
        with self._locked() as state:
            state[f"mark/{key}"] = [self.clock() + ttl]

    def marked(self, key: str) -> bool:
        with self._locked() as state:
            until = state.get(f"mark/{key}", [0.0])
        return bool(until) and until[0] > self.clock()


@dataclass
class SharedRateLimiter:
    """A site's limits in ``backend``; drop-in for ``RateLimiter`` (``acquire``/``finish``)."""

    backend: WindowBackend
    site: str  # one key per ezyVet site (its address and site UID)
    priority: str = PULL  # WRITEBACK or PULL
    rate: int = 180
    endpoint_rate: int = 60
    window: float = 60.0
    margin: float = 2.0  # seconds added to the window: the way from here to ezyVet
    reserve: int = 18  # site slots pulls leave free while writebacks are waiting
    sleep: Callable[[float], None] = time.sleep
    waited: float = 0.0

    def acquire(self, endpoint: str) -> tuple[list[float], list[float]]:
        window = self.window + self.margin
        site_key, endpoint_key = f"{self.site}/site", f"{self.site}/endpoint/{endpoint}"
        writeback, starved = self.priority == WRITEBACK, False
        while True:
            marked = not writeback and self.backend.marked(f"{self.site}/writebacks")
            wait = self._wait(site_key, self.rate, window, self.reserve if marked else 0)
            if writeback and wait > 0:
                # Starved by the site's budget (not by its own endpoint's): from now until a
                # window after it got its slot, pulls leave writebacks the reserve.
                self.backend.mark(f"{self.site}/writebacks", window + wait)
                starved = True
            wait = max(wait, self._wait(endpoint_key, self.endpoint_rate, window, 0))
            # Endpoint first, then the site; when the site's window filled meanwhile, the
            # endpoint slot goes unused (it only delays this endpoint's next call).
            if (
                wait <= 0
                and self.backend.hit(endpoint_key, self.endpoint_rate, window)
                and self.backend.hit(site_key, self.rate, window)
            ):
                if starved:
                    self.backend.mark(f"{self.site}/writebacks", window)
                return [], []
            self.waited += max(wait, 0.05)
            self.sleep(max(wait, 0.05))

    def _wait(self, key: str, limit: int, window: float, reserve: int) -> float:
        left, reset_in = self.backend.stats(key, limit, window)
        if left > reserve:
            return 0.0
        if left > 0:
            return 0.5  # what is left is the writebacks': look again shortly
        return max(reset_in, 0.05)

    def finish(self, slots: tuple[list[float], list[float]]) -> None:
        """Nothing to stamp: the margin covers the call's way to ezyVet."""
