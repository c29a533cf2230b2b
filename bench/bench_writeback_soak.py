"""WriteBack soak: prescriptions through approve -> ship -> ship -> cancel into ezyVet, with
injected faults and a Celery worker killed (SIGKILL) and restarted midway.

Phase 1 (soak): SOAK_PRESCRIPTIONS (1,000) prescriptions, each approved (POST), shipped twice
(two PATCH dispenses) and cancelled (PATCH status), each action its own transaction, against
the ezyVet emulator on a real socket. Faults are kept at SOAK_FAULT_RATIO (20 %) of the
writeback calls: 429 + Retry-After, 503, slow answers, dropped connections, and writes applied
but answered by a dropped connection. Rate limits are off on both sides: the emulator's, and
the connector's own (a worker process otherwise keeps to 60 calls a minute by itself, which
would make this phase take an hour; a generated ``soak_app`` module turns them off and is the
only difference from the product; SOAK_CLIENT_LIMITS=1 keeps them). Real ``celery worker``
processes deliver; the bench plays beat (``writeback_sweep`` on beat's schedule). When half the
rows are delivered, one worker's process group is SIGKILLed and a new worker started. When no
row is pending or sending it prints the rows by status, the emulator's prescriptions per
``external_reference`` (duplicates), lost rows (delivered but ezyVet differs, failed, or never
there), every item's status, status date and remaining compared, and commit -> delivered
p50/p95.

Phase 2 (fault-free): SOAK_CLEAN_PRESCRIPTIONS (200) and SOAK_PACED_PRESCRIPTIONS with the
emulator's limits off (and the connector's, as in phase 1), then SOAK_LIMITED_PRESCRIPTIONS
(25) under ezyVet's limits (180 calls/min per site, 60 per endpoint) with the workers exactly
as in the product (one budget per site shared by all of them): delivery p50/p95 after
commit, throughput (rows/s) and the emulator's answers (429s).

Brokers (SOAK_BROKER): ``filesystem`` (default, as `make run`), ``redis`` (production's:
the bench's own ``redis-server`` on a free port, without persistence; in phase 1 it is
SIGKILLed when three quarters of the rows are delivered and restarted 2 s later, empty, on
top of the worker kill) or ``both`` (the whole bench once per broker, then commit ->
delivered p50/p95 of every phase side by side). A worker that dies without being killed is
said at once with the end of its log, and replaced; one that never gets ready fails the run.

A throwaway database: a SQLite file in a temporary directory, or, when DATABASE_URL names a
PostgreSQL server, a database created there and dropped afterwards (any other DATABASE_URL is
used as given). The filesystem Celery broker, in the same directory (REDIS_URL is ignored),
polled every SOAK_BROKER_POLLING s (0.1; kombu's 1 s caps a worker at ~`concurrency` tasks a
second). Prints figures; exits non-zero only when a row is lost, a prescription is duplicated
in ezyVet, or a phase does not converge.

    python bench/bench_writeback_soak.py

Scale and tune with SOAK_PRESCRIPTIONS, SOAK_CLEAN_PRESCRIPTIONS, SOAK_LIMITED_PRESCRIPTIONS
(0 skips a phase), SOAK_FAULT_RATIO, SOAK_WORKERS (2), SOAK_CONCURRENCY (8 per worker),
SOAK_SWEEP_SECONDS (beat's schedule), SOAK_TIMEOUT (420 s to converge after the last commit),
SOAK_PACED_PRESCRIPTIONS (100) and SOAK_PACE (10 actions/s: delivery latency under a load
the workers keep up with), SOAK_BATCH (20 prescriptions per step), SOAK_SEED,
SOAK_LOG_DIR (keep the workers' logs);
WRITEBACK_BACKOFF_BASE (0.5), WRITEBACK_BACKOFF_MAX (5), WRITEBACK_LEASE_SECONDS (45 in phase
1, the settings' in phase 2, where a worker's own limiter may wait up to 60 s inside a send).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))

from redis_server import RedisServer  # noqa: E402  (ROOT and bench/ are put on the path above)
from soak_verdict import Verdict, attempts_summary, pct, print_verdict, verify  # noqa: E402
from soak_workers import Workers  # noqa: E402
from soak_world import Driver, make_clinic  # noqa: E402

from vetsync.pims.emulator import EzyVetEmulator  # noqa: E402

EP = "externalprescription"
# (kind, weight, options): what a faulted writeback call meets.
FAULTS: tuple[tuple[str, int, dict[str, Any]], ...] = (
    ("rate_limit", 25, {"retry_after": 1}),
    ("server_error", 25, {"status": 503}),
    ("drop", 15, {}),
    ("lost_write", 20, {}),
    ("delay", 15, {"seconds": 1.5}),
)


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass
class Config:
    prescriptions: int = env_int("SOAK_PRESCRIPTIONS", 1000)
    clean: int = env_int("SOAK_CLEAN_PRESCRIPTIONS", 200)
    limited: int = env_int("SOAK_LIMITED_PRESCRIPTIONS", 25)
    paced: int = env_int("SOAK_PACED_PRESCRIPTIONS", 100)
    pace: float = env_float("SOAK_PACE", 10.0)  # actions a second in the paced run
    fault_ratio: float = env_float("SOAK_FAULT_RATIO", 0.2)
    workers: int = env_int("SOAK_WORKERS", 2)
    concurrency: int = env_int("SOAK_CONCURRENCY", 8)
    sweep_seconds: float = env_float("SOAK_SWEEP_SECONDS", 0)  # 0: beat's own schedule
    timeout: float = env_float("SOAK_TIMEOUT", 420.0)
    batch: int = env_int("SOAK_BATCH", 20)
    seed: int = env_int("SOAK_SEED", 7)
    polling: float = env_float("SOAK_BROKER_POLLING", 0.1)
    client_limits: bool = os.environ.get("SOAK_CLIENT_LIMITS", "") not in ("", "0")
    broker: str = os.environ.get("SOAK_BROKER", "filesystem")  # filesystem, redis or both


# --- the throwaway database and the worker processes ------------------------------------------


@contextmanager
def throwaway_database(tmp: Path) -> Iterator[str]:
    """The DATABASE_URL the run uses, and (PostgreSQL) the database dropped afterwards."""
    given = os.environ.get("DATABASE_URL", "")
    if not given.startswith(("postgres://", "postgresql://")):
        yield given or f"sqlite:///{tmp / 'var' / 'vetsync.sqlite3'}"
        return
    import psycopg

    name = f"vetsync_bench_writeback_soak_{os.getpid()}"
    with psycopg.connect(given, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield given.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(given, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- faults: ezyVet misbehaving on a share of the writeback calls -----------------------------


class FaultKeeper(threading.Thread):
    """The emulator's faults are counted, not probabilistic: keep injecting one at a time so
    that about ``ratio`` of all ``v1/externalprescription`` calls meet one."""

    def __init__(self, site: EzyVetEmulator, ratio: float, seed: int) -> None:
        super().__init__(name="fault-keeper", daemon=True)
        self.site = site
        self.ratio = ratio
        self.rng = random.Random(seed)
        self.halt = threading.Event()
        self.injected: list[Any] = []  # the emulator's Fault objects, to count what was met

    def calls(self) -> int:
        counts = self.site.request_counts
        return sum(n for key, n in counts.items() if key.endswith(" " + EP))

    def run(self) -> None:
        kinds = [k for k, _, _ in FAULTS]
        weights = [w for _, w, _ in FAULTS]
        options = {k: o for k, _, o in FAULTS}
        while not self.halt.wait(0.005):
            with self.site.lock:
                self.site.faults[:] = [f for f in self.site.faults if f.remaining > 0]
                if self.site.faults or len(self.injected) >= self.ratio * (self.calls() + 1):
                    continue
                kind = self.rng.choices(kinds, weights)[0]
                self.site.inject_fault(kind, 1, endpoint=EP, **options[kind])
                self.injected.append(self.site.faults[-1])

    def stop(self) -> None:
        self.halt.set()
        self.join()
        self.site.clear_faults()

    def met(self) -> Counter[str]:
        return Counter(f.kind for f in self.injected if f.remaining <= 0)


# --- beat, chaos, convergence ------------------------------------------------------------------


@dataclass
class Beat:
    """The bench's stand-in for Celery beat (the writeback sweep), plus the mid-run crash."""

    clinic: Any
    sweep_seconds: float
    workers: Workers
    kill_when_delivered: int | None = None  # rows delivered before one worker is killed
    restart_after: float = 3.0
    next_sweep: float = 0.0
    next_check: float = 0.0
    sweeps: int = 0
    killed: str = ""
    killed_at: float = 0.0
    killed_sending: list[int] = field(default_factory=list)
    restarted: str = ""
    delivered_at_kill: int = 0
    next_depth: float = 0.0
    max_queue: int = 0
    redis: RedisServer | None = None  # the broker to kill and restart, on Redis
    redis_kill_when_delivered: int | None = None
    redis_down_for: float = 2.0
    redis_killed_at: float = 0.0
    redis_restarted: bool = False
    sweeps_refused: int = 0

    def queue_depth(self) -> int:
        """Messages waiting in the broker's queues (Redis lists, or the filesystem's files)."""
        from vetsync.ops.metrics import queue_depths

        return sum(queue_depths().values())

    def sweep(self) -> None:
        """What beat sends; while the broker is down, beat's send fails and is logged."""
        from prescriptions.tasks import writeback_sweep_task

        try:
            writeback_sweep_task.delay()
            self.sweeps += 1
        except Exception as exc:  # kombu's OperationalError once its retries are spent
            self.sweeps_refused += 1
            print(f"  beat: sweep not sent, broker down ({type(exc).__name__})", flush=True)

    def broker_chaos(self, now: float, delivered: int) -> None:
        """On Redis: SIGKILL the server when enough rows are delivered and restart it a little
        later from a timer thread (whoever is publishing meanwhile is blocked retrying)."""
        if self.redis is None or self.redis_kill_when_delivered is None or self.redis_killed_at:
            return
        if delivered >= self.redis_kill_when_delivered:
            self.redis.kill()
            self.redis_killed_at = now
            print(f"  SIGKILL redis-server with {delivered} rows delivered", flush=True)
            threading.Timer(self.redis_down_for, self.redis_restart).start()

    def redis_restart(self) -> None:
        assert self.redis is not None
        self.redis.start()
        self.redis_restarted = True
        print(
            f"  restarted redis-server after {time.monotonic() - self.redis_killed_at:.1f} s "
            "(empty: no persistence)",
            flush=True,
        )

    def __call__(self) -> None:
        from prescriptions.models import WritebackItem

        now = time.monotonic()
        if now >= self.next_sweep:
            self.sweep()
            self.next_sweep = now + self.sweep_seconds
        if now >= self.next_depth:
            self.max_queue = max(self.max_queue, self.queue_depth())
            self.next_depth = now + 1.0
            for _ in self.workers.casualties():  # said on stdout; replaced so the run goes on
                print(f"  started worker {self.workers.start()} in its place", flush=True)
        if now < self.next_check:
            return
        self.next_check = now + 0.5
        rows = WritebackItem.objects.filter(clinic=self.clinic)
        delivered = rows.filter(status=WritebackItem.Status.DELIVERED).count()
        self.broker_chaos(now, delivered)
        if self.kill_when_delivered is None or self.restarted:
            return
        if not self.killed:
            if delivered >= self.kill_when_delivered:
                self.killed = next(iter(self.workers.running))
                self.killed_sending = list(
                    rows.filter(status=WritebackItem.Status.SENDING).values_list("pk", flat=True)
                )
                self.workers.kill(self.killed)
                self.killed_at = now
                self.delivered_at_kill = delivered
                print(
                    f"  SIGKILL worker {self.killed} (process group) with {delivered} rows "
                    f"delivered and {len(self.killed_sending)} claimed (sending)",
                    flush=True,
                )
        elif now - self.killed_at >= self.restart_after:
            self.restarted = self.workers.start()
            print(f"  started worker {self.restarted}", flush=True)

    def converge(self, timeout: float) -> bool:
        """Keep sweeping until no row of the clinic is pending or sending (or time runs out)."""
        from prescriptions.models import WritebackItem

        deadline = time.monotonic() + timeout
        next_report = time.monotonic() + 30
        while time.monotonic() < deadline:
            self()
            open_rows = WritebackItem.objects.filter(
                clinic=self.clinic, status__in=[WritebackItem.Status.PENDING, "sending"]
            ).count()
            done = (self.kill_when_delivered is None or bool(self.restarted)) and (
                self.redis_kill_when_delivered is None or self.redis_restarted
            )
            if open_rows == 0 and done:
                return True
            if time.monotonic() >= next_report:
                print(f"  ... {open_rows} rows still pending or sending", flush=True)
                next_report = time.monotonic() + 30
            time.sleep(0.25)
        return False


# --- the phases ----------------------------------------------------------------------------------


def result_line(
    cfg: Config, phase: str, verdict: Verdict, converged: bool, workers_died: list[str]
) -> str:
    """One line per phase that ``SOAK_BROKER=both`` gathers into its table."""
    return (
        f"RESULT broker={cfg.broker} phase={phase} rows={verdict.rows} "
        f"p50={pct(verdict.latencies, 0.5):.2f} p95={pct(verdict.latencies, 0.95):.2f} "
        f"lost={verdict.lost} duplicated={verdict.duplicates} converged={converged} "
        f"workers_died_on_their_own={len(workers_died)}"
    )


def soak(cfg: Config, workers: Workers, redis: RedisServer | None = None) -> bool:
    print(
        f"phase 1 (soak): {cfg.prescriptions} prescriptions x (approve, ship, ship, cancel); "
        f"{cfg.fault_ratio:.0%} of writeback calls faulted; emulator rate limits off",
        flush=True,
    )
    site = EzyVetEmulator(clients=120, seed=cfg.seed, rate_per_minute=0, endpoint_rate_per_minute=0)
    site.start()
    keeper = FaultKeeper(site, cfg.fault_ratio, cfg.seed)
    try:
        world = make_clinic(site, "soak")
        beat = Beat(
            world.clinic,
            cfg.sweep_seconds,
            workers,
            kill_when_delivered=2 * cfg.prescriptions,  # half of the 4 rows per prescription
            redis=redis,
            redis_kill_when_delivered=3 * cfg.prescriptions if redis else None,  # three quarters
        )
        driver = Driver(world, cfg.prescriptions, cfg.batch, on_action=beat)
        tasks_before = workers.deliveries_taken()
        keeper.start()
        started = time.monotonic()
        driver.run()
        print(
            f"  {driver.actions} actions committed in {driver.elapsed:.1f} s "
            f"({driver.actions / driver.elapsed:.0f}/s)",
            flush=True,
        )
        converged = beat.converge(cfg.timeout)
        elapsed = time.monotonic() - started
        keeper.stop()
        met = keeper.met()
        calls = keeper.calls()
        verdict = verify(world, site)
        print(
            f"  {'converged' if converged else 'DID NOT CONVERGE'} in {elapsed:.1f} s; "
            f"{beat.sweeps} sweeps; broker backlog up to {beat.max_queue} messages"
        )
        print(
            f"  faults met {sum(met.values())} of {calls} writeback calls "
            f"({sum(met.values()) / max(calls, 1):.1%}): {dict(met.most_common())}"
        )
        if beat.killed:
            from prescriptions.models import WritebackItem

            claimed = WritebackItem.objects.filter(pk__in=beat.killed_sending)
            print(
                f"  killed {beat.killed} at {beat.delivered_at_kill} delivered, restarted as "
                f"{beat.restarted}; its {len(beat.killed_sending)} claimed rows ended "
                f"{dict(Counter(claimed.values_list('status', flat=True)))}"
            )
        else:
            print("  NO WORKER WAS KILLED (the run ended before half the rows were delivered)")
        if redis is not None:
            print(
                f"  redis-server killed {redis.kills} time(s), restarted: {beat.redis_restarted}; "
                f"beat's sweeps refused while it was down: {beat.sweeps_refused}"
            )
        tasks = workers.deliveries_taken() - tasks_before
        print(f"  {attempts_summary(world.clinic, tasks)}")
        print_verdict(verdict, site)
        print(result_line(cfg, "soak", verdict, converged, workers.died), flush=True)
        return converged and verdict.ok and (redis is None or beat.redis_restarted)
    finally:
        if keeper.is_alive():
            keeper.stop()
        site.stop()


def clean(
    cfg: Config, workers: Workers, count: int, limited: bool, slug: str, pace: float = 0.0
) -> bool:
    limits = "ezyVet's limits (180/min per site, 60/min per endpoint)" if limited else "no limits"
    paced = f", paced at {pace:g} actions/s" if pace else ", actions as fast as they commit"
    print(
        f"phase 2 (fault-free, {limits}{paced}): {count} prescriptions x "
        "(approve, ship, ship, cancel)",
        flush=True,
    )
    site = (
        EzyVetEmulator(clients=120, seed=cfg.seed)
        if limited
        else EzyVetEmulator(
            clients=120, seed=cfg.seed, rate_per_minute=0, endpoint_rate_per_minute=0
        )
    )
    site.start()
    try:
        world = make_clinic(site, slug)
        site.reset_counters()
        beat = Beat(world.clinic, cfg.sweep_seconds, workers)
        driver = Driver(world, count, cfg.batch, on_action=beat, pace=pace)
        tasks_before = workers.deliveries_taken()
        started = time.monotonic()
        driver.run()
        converged = beat.converge(cfg.timeout)
        elapsed = time.monotonic() - started
        verdict = verify(world, site)
        print(
            f"  {driver.actions} actions committed in {driver.elapsed:.1f} s; "
            f"{'converged' if converged else 'DID NOT CONVERGE'} in {elapsed:.1f} s; "
            f"broker backlog up to {beat.max_queue} messages"
        )
        tasks = workers.deliveries_taken() - tasks_before
        print(f"  {attempts_summary(world.clinic, tasks)}")
        print_verdict(verdict, site)
        print(result_line(cfg, slug, verdict, converged, workers.died), flush=True)
        return converged and verdict.ok
    finally:
        site.stop()


SOAK_APP = '''"""The product's Celery app, its ezyVet connector's own rate limits off (the
emulator's are off too): a worker process otherwise keeps to 60 calls/min on its own."""

import functools

import django

from vetsync.celery import app

django.setup()
from prescriptions.writeback import delivery  # noqa: E402

delivery.ezyvet_client = functools.partial(
    delivery.ezyvet_client, rate_per_minute=0, endpoint_rate_per_minute=0
)
__all__ = ["app"]
'''


def prepare(tmp: Path, cfg: Config, database_url: str, redis_url: str = "") -> None:
    """The environment every process shares: settings as they are, but the filesystem broker
    polled more often than kombu's 1 s (which caps a worker at ~`concurrency` tasks/s); on
    Redis, the bench's own server."""
    polling = (
        ""
        if redis_url
        else (
            "CELERY_BROKER_TRANSPORT_OPTIONS = {\n"
            "    **CELERY_BROKER_TRANSPORT_OPTIONS,  # noqa: F405\n"
            f"    'polling_interval': {cfg.polling},\n"
            "}\n"
        )
    )
    (tmp / "soak_settings.py").write_text(
        f"from vetsync.settings import *  # noqa: F403\n{polling}"
    )
    (tmp / "soak_app.py").write_text(SOAK_APP)
    sys.path.insert(0, str(tmp))
    os.environ.pop("REDIS_URL", None)
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    os.environ.update(
        {
            "PYTHONPATH": os.pathsep.join(
                [str(tmp), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            "DJANGO_SETTINGS_MODULE": "soak_settings",
            "DEBUG": "0",
            "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
            "VETSYNC_VAR_DIR": str(tmp / "var"),
            "DATABASE_URL": database_url,
            "WRITEBACK_BACKOFF_BASE": os.environ.get("WRITEBACK_BACKOFF_BASE", "0.5"),
            "WRITEBACK_BACKOFF_MAX": os.environ.get("WRITEBACK_BACKOFF_MAX", "5"),
        }
    )


def worker_env(lease: int | None) -> dict[str, str]:
    """The workers' environment; ``lease`` None keeps the product's (WRITEBACK_LEASE_SECONDS
    set by the caller wins either way)."""
    env = dict(os.environ)
    if lease is not None:
        env.setdefault("WRITEBACK_LEASE_SECONDS", str(lease))
    return env


def main() -> int:
    cfg = Config()
    # Stopped from outside: leave through the finally blocks (workers, database, redis-server).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if cfg.broker == "both":
        return both()
    if cfg.broker not in ("filesystem", "redis"):
        print(f"SOAK_BROKER must be filesystem, redis or both, not {cfg.broker!r}")
        return 2
    with tempfile.TemporaryDirectory(prefix="vetsync-bench-soak-") as tmp_name:
        tmp = Path(tmp_name)
        redis = RedisServer(tmp / "redis") if cfg.broker == "redis" else None
        if redis is not None:
            redis.start()
        try:
            with throwaway_database(tmp) as database_url:
                prepare(tmp, cfg, database_url, redis.url if redis else "")
                return run(cfg, tmp, redis)
        finally:
            if redis is not None:
                redis.stop()


def both() -> int:
    """The whole bench once per broker, then their delivery figures side by side."""
    results: list[str] = []
    codes = []
    for broker in ("filesystem", "redis"):
        print(f"==== SOAK_BROKER={broker}", flush=True)
        proc = subprocess.Popen(
            [sys.executable, __file__],
            env={**os.environ, "SOAK_BROKER": broker},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.startswith("RESULT "):
                results.append(line.strip())
        codes.append(proc.wait())
    print("==== commit -> delivered, by broker and phase")
    for line in results:
        print("  " + line.removeprefix("RESULT "))
    return max(codes)


def run(cfg: Config, tmp: Path, redis: RedisServer | None) -> int:
    import django

    django.setup()
    # The filesystem broker has no host; kombu says so once per connection.
    logging.getLogger("kombu.connection").setLevel(logging.ERROR)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    from django.conf import settings

    if not cfg.sweep_seconds:
        sweep = settings.CELERY_BEAT_SCHEDULE["prescriptions-writeback-sweep"]
        cfg.sweep_seconds = float(cast(float, sweep["schedule"]))
    print(
        f"WriteBack soak on {connection.vendor}; {cfg.workers} Celery workers x "
        f"{cfg.concurrency} processes; {broker_text(cfg, redis)}; "
        f"sweep every {cfg.sweep_seconds:g} s; backoff "
        f"{os.environ['WRITEBACK_BACKOFF_BASE']}..{os.environ['WRITEBACK_BACKOFF_MAX']} s",
        flush=True,
    )
    logs = Path(os.environ.get("SOAK_LOG_DIR") or tmp)
    logs.mkdir(parents=True, exist_ok=True)
    workers = Workers(logs, cfg.concurrency)
    ok = True
    try:
        if cfg.prescriptions:
            app = "vetsync" if cfg.client_limits else "soak_app"
            env = worker_env(45)
            workers.restart_all(cfg.workers, app, env)
            print(
                f"phase 1 workers: lease {env['WRITEBACK_LEASE_SECONDS']} s; connector's "
                f"own limits {'as in the product' if cfg.client_limits else 'off'}",
                flush=True,
            )
            ok = soak(cfg, workers, redis) and ok
        if cfg.clean or cfg.paced:
            # The emulator's limits are off: so are the connector's (one site's budget is
            # shared by every worker since issue 15; at 60 calls a minute this phase would
            # measure the limit, not delivery).
            app = "vetsync" if cfg.client_limits else "soak_app"
            workers.restart_all(cfg.workers, app, worker_env(None))
            print(f"phase 2 workers: connector's own limits {'on' if cfg.client_limits else 'off'}")
        if cfg.clean:
            ok = clean(cfg, workers, cfg.clean, limited=False, slug="clean") and ok
        if cfg.paced:
            ok = clean(cfg, workers, cfg.paced, limited=False, slug="paced", pace=cfg.pace) and ok
        if cfg.limited:
            workers.restart_all(cfg.workers, "vetsync", worker_env(None))
            print(
                "phase 2 workers (limited): the product as is, one shared budget per site "
                "(180/60 calls a minute)",
                flush=True,
            )
            ok = clean(cfg, workers, cfg.limited, limited=True, slug="limited") and ok
    finally:
        workers.stop_all()
        connection.close()
    if workers.died:
        # Said where it happened (with the log's end) and replaced, as `make serve` does;
        # what counts is that nothing was lost or sent twice meanwhile.
        print(f"NOTE: workers died on their own and were replaced: {', '.join(workers.died)}")
    print("OK" if ok else "FAILED: rows lost or duplicated, or a phase did not converge")
    return 0 if ok else 1


def broker_text(cfg: Config, redis: RedisServer | None) -> str:
    if redis is None:
        return f"filesystem broker polled every {cfg.polling:g} s"
    return f"Redis broker (its own redis-server on port {redis.port}, no persistence)"


if __name__ == "__main__":
    sys.exit(main())
