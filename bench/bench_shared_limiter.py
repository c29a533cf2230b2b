"""Benchmark: one ezyVet site's budget shared by 4 worker processes, at ezyVet's real limits.

The ezyVet emulator enforces its strict sliding window (180 calls per 60 s per site, 60 per
endpoint). Four processes call it as fast as VetSync's shared limiter lets them for DURATION:
two pull (GET contact, GET animal: the pull's pages) and two write back (calls on
externalprescription, the writeback's endpoint, at writeback priority; they read, so the
run needs no prescriptions). Three endpoints at 60 a minute make the achievable rate the
site's 180 a minute. Prints: answers of 429 (target 0), the most calls in any window as the
emulator counts them, and the steady throughput (after the first window's burst) against the
achievable rate (target: within 10 %).

    python bench/bench_shared_limiter.py                 # 2 minutes, Redis and file lock
    python bench/bench_shared_limiter.py --quick         # limits and window scaled to 12 s
    python bench/bench_shared_limiter.py --store redis|file|both --seconds 120

Redis: the bench's own redis-server on a free port. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from redis_server import RedisServer  # noqa: E402  (bench/ is on the path above)

from vetsync.pims.emulator import EzyVetEmulator  # noqa: E402
from vetsync.pims.ezyvet import EzyVetClient, parse_credentials_file  # noqa: E402
from vetsync.pims.ezyvet.errors import EzyVetError  # noqa: E402
from vetsync.pims.ezyvet.shared_limits import (  # noqa: E402
    PULL,
    WRITEBACK,
    FileBackend,
    LimitsBackend,
    SharedRateLimiter,
)

ROLES = ((PULL, ("contact", "animal")), (PULL, ("animal", "contact")))
ROLES += ((WRITEBACK, ("externalprescription",)),) * 2


class SharedToken:
    """The site's one token, shared as the workers share it through the cache."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get(self) -> tuple[str, float]:
        return self.token, time.time() + 3600

    def put(self, token: str, expires_at: float) -> None:
        self.token = token

    def discard(self, token: str) -> None:
        pass


def worker(spec: dict[str, Any], role: int, until: float, results: Any) -> None:
    priority, endpoints = ROLES[role]
    store = spec["store"]
    backend = LimitsBackend(store) if store.startswith("redis") else FileBackend(Path(store))
    limiter = SharedRateLimiter(
        backend=backend,
        site="bench-site/1",
        priority=priority,
        rate=spec["rate"],
        endpoint_rate=spec["endpoint_rate"],
        window=spec["window"],
        margin=spec["margin"],
        reserve=spec["reserve"],
    )
    client = EzyVetClient(
        spec["base_url"],
        parse_credentials_file(spec["credentials"]),
        limiter=limiter,
        max_rate_limited=0,
        token_store=SharedToken(spec["token"]),
    )
    stamps: list[float] = []
    errors = 0
    i = 0
    while time.time() < until:
        try:
            client.request("GET", endpoints[i % len(endpoints)], params={"limit": 1})
            stamps.append(time.time())
        except EzyVetError:
            errors += 1
        i += 1
    results.put((role, stamps, errors, limiter.waited))


def run(store_name: str, store: str, args: argparse.Namespace) -> None:
    scale = args.window / 60.0
    rate, endpoint_rate = round(180 * scale), round(60 * scale)
    site = EzyVetEmulator(
        clients=50,
        seed=2,
        rate_per_minute=rate,
        endpoint_rate_per_minute=endpoint_rate,
        window_seconds=args.window,
    )
    site.start()
    try:
        text = site.credentials.as_text()
        token = EzyVetClient(site.base_url, parse_credentials_file(text)).access_token()
        spec = {
            "store": store,
            "base_url": site.base_url,
            "credentials": text,
            "token": token,
            "rate": rate,
            "endpoint_rate": endpoint_rate,
            "window": args.window,
            "margin": 2.0 * scale,
            "reserve": round(18 * scale),
        }
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        started = time.time() + 2.0  # every process spawned before the clock starts
        until = started + args.seconds
        procs = [
            context.Process(target=worker, args=(spec, role, until, results))
            for role in range(len(ROLES))
        ]
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=args.seconds + 120) for _ in procs]
        for proc in procs:
            proc.join()
        state = site.state()
    finally:
        site.stop()
    print_figures(store_name, args, rate, started, until, outcomes, state)


def print_figures(
    store_name: str,
    args: argparse.Namespace,
    rate: int,
    started: float,
    until: float,
    outcomes: list[tuple[int, list[float], int, float]],
    state: dict[str, Any],
) -> None:
    # A process may wake from the limiter after the end and make one more call: not counted.
    stamps = sorted(t for _, s, _, _ in outcomes for t in s if t <= until)
    window = args.window
    peak = max((sum(1 for u in stamps if t - window < u <= t) for t in stamps), default=0)
    steady = [t for t in stamps if t > started + window]
    steady_rate = len(steady) / max(until - (started + window), 1e-9) * window
    by_role = {PULL: 0, WRITEBACK: 0}
    for role, s, _, _ in outcomes:
        by_role[ROLES[role][0]] += sum(1 for t in s if t <= until)
    errors = sum(e for _, _, e, _ in outcomes)
    answers = state["status_counts"]
    print(f"== {store_name}: 4 processes for {args.seconds:g} s, window {window:g} s")
    print(
        f"  calls answered {len(stamps)} (pulls {by_role[PULL]}, writebacks "
        f"{by_role[WRITEBACK]}); errors {errors}; emulator's answers {dict(answers)}"
    )
    print(f"  answers of 429: {answers.get('429', 0)} (target 0)")
    print(f"  most calls in any {window:g} s window: {peak} (site limit {rate})")
    print(
        f"  steady throughput (after the first window): {steady_rate:.1f} calls per "
        f"{window:g} s = {steady_rate / rate:.1%} of the achievable {rate} (target >= 90 %)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--store", choices=["redis", "file", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="window 12 s for 36 s")
    args = parser.parse_args()
    if args.quick:
        args.window, args.seconds = 12.0, 36.0
    with tempfile.TemporaryDirectory(prefix="vetsync-bench-limiter-") as tmp_name:
        tmp = Path(tmp_name)
        if args.store in ("file", "both"):
            run("file lock", str(tmp / "windows"), args)
        if args.store in ("redis", "both"):
            redis = RedisServer(tmp / "redis")
            redis.start()
            try:
                run("Redis (limits, moving window)", redis.url, args)
            finally:
                redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
