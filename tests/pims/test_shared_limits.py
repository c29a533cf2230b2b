"""One ezyVet site's budget shared by several processes: against the emulator's strict sliding
window, two processes keep to one budget together (no 429), on Redis and on the file lock."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import redis_server
from vetsync.pims.emulator import EzyVetEmulator
from vetsync.pims.ezyvet import EzyVetClient, parse_credentials_file
from vetsync.pims.ezyvet.errors import EzyVetRateLimited
from vetsync.pims.ezyvet.shared_limits import (
    PULL,
    WRITEBACK,
    FileBackend,
    LimitsBackend,
    SharedRateLimiter,
)

RATE, ENDPOINT_RATE, WINDOW, MARGIN = 4, 3, 2.0, 0.3
CALLS_EACH = 6


@pytest.fixture(params=["file", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where the windows live: a directory (file lock) or a redis:// URL (its own server)."""
    if request.param == "file":
        yield str(tmp_path / "windows")
        return
    with redis_server(tmp_path) as (_, url):
        yield url


def backend_for(store: str) -> Any:
    return LimitsBackend(store) if store.startswith("redis://") else FileBackend(Path(store))


class SharedToken:
    """The site's one token, as workers share it through the cache (a new token would revoke
    the other process's)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get(self) -> tuple[str, float]:
        return self.token, time.time() + 3600

    def put(self, token: str, expires_at: float) -> None:
        self.token = token

    def discard(self, token: str) -> None:
        pass


def calls(base_url: str, credentials_text: str, token: str, store: str, results: Any) -> None:
    """One worker process: CALLS_EACH reads over two endpoints, a 429 raised at once."""
    limiter = SharedRateLimiter(
        backend=backend_for(store),
        site="emulated-site/1",
        rate=RATE,
        endpoint_rate=ENDPOINT_RATE,
        window=WINDOW,
        margin=MARGIN,
        reserve=0,
    )
    client = EzyVetClient(
        base_url,
        parse_credentials_file(credentials_text),
        limiter=limiter,
        max_rate_limited=0,
        token_store=SharedToken(token),
    )
    answered = refused = 0
    for i in range(CALLS_EACH):
        try:
            client.request("GET", ("contact", "animal")[i % 2], params={"limit": 1})
            answered += 1
        except EzyVetRateLimited:
            refused += 1
    results.put((answered, refused))


def test_two_processes_keep_to_one_site_budget_together(store: str) -> None:
    site = EzyVetEmulator(
        clients=10,
        seed=1,
        rate_per_minute=RATE,
        endpoint_rate_per_minute=ENDPOINT_RATE,
        window_seconds=WINDOW,
    )
    site.start()
    try:
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        text = site.credentials.as_text()
        token = EzyVetClient(site.base_url, parse_credentials_file(text)).access_token()
        args = (site.base_url, text, token, store, results)
        workers = [context.Process(target=calls, args=args) for _ in range(2)]
        started = time.monotonic()
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(timeout=30)
        elapsed = time.monotonic() - started
        answers = site.state()["status_counts"]
    finally:
        site.stop()
    assert outcomes == [(CALLS_EACH, 0), (CALLS_EACH, 0)]
    assert "429" not in answers
    # 12 calls at 4 per window: at least two full windows of waiting between the first four
    # and the last four (each process alone would have sent its six in about one window).
    assert elapsed >= 2 * WINDOW


def test_pulls_leave_the_reserve_to_writebacks_once_one_waited(tmp_path: Path) -> None:
    now = [0.0]
    backend = FileBackend(tmp_path, clock=lambda: now[0])
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    def refuse(seconds: float) -> None:
        raise TimeoutError("would wait")

    def limiter(priority: str) -> SharedRateLimiter:
        return SharedRateLimiter(
            backend=backend, site="s", priority=priority, rate=5, endpoint_rate=5, window=10,
            margin=0, reserve=2, sleep=sleep,
        )  # fmt: skip

    writeback, pull = limiter(WRITEBACK), limiter(PULL)
    for _ in range(5):
        pull.acquire("contact")  # no writeback waiting: pulls may use the whole budget
    assert slept == []
    writeback.acquire("externalprescription")  # the site is full: it waits for a slot
    assert now[0] >= 10
    pull.acquire("animal")
    pull.acquire("animal")  # 2 of the site's 5 left: the writebacks' reserve
    pull.sleep = refuse
    with pytest.raises(TimeoutError):
        pull.acquire("animal")
    writeback.sleep = refuse
    writeback.acquire("externalprescription")  # the reserve is theirs: no waiting
    writeback.acquire("externalprescription")
    with pytest.raises(TimeoutError):
        writeback.acquire("externalprescription")  # the site's 5 are spent
