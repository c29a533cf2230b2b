"""Benchmark: WriteBack commit -> delivered while a big agent-batch first copy is applied.

One deployment as `make serve` runs it (PostgreSQL, the bench's own redis-server, a Celery
worker per queue: sync, writeback, default), two clinics: one receives a first copy of
CLIENTS clients (the CPU-heavy case) through the sync queue; the other, on the ezyVet
emulator with WriteBack on, approves one prescription a second while the copy is applied.
Prints the copy's duration and the writebacks' commit -> delivered p50/p95/max (target: p95
<= 1 s). ``--layout shared`` runs the same with one worker on every queue, as before queues
were split, for comparison.

    python bench/bench_writeback_during_first_copy.py [--clients 100000] [--layout queues|shared]
    python bench/bench_writeback_during_first_copy.py --quick      # 10,000 clients

PostgreSQL at BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres): a
throwaway database is created and dropped. Prints figures; exits 1 only when it measured
nothing (no writeback committed while the copy ran).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_sync_first_copy import make_batches  # noqa: E402  (bench/ is on the path above)
from bench_writeback_soak import pct, throwaway_database  # noqa: E402
from redis_server import RedisServer  # noqa: E402
from soak_workers import Workers  # noqa: E402
from soak_world import Driver, make_clinic  # noqa: E402

from vetsync.pims.emulator import EzyVetEmulator  # noqa: E402

PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def setup_env(tmp: Path, database_url: str, redis_url: str) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "vetsync.settings",
            "DEBUG": "0",
            "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
            "VETSYNC_VAR_DIR": str(tmp / "var"),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.getenv("PYTHONPATH")])]),
        }
    )


def start_workers(workers: Workers, layout: str) -> None:
    workers.env = dict(os.environ)
    if layout == "shared":
        workers.start("sync,pull,writeback,bulk,default", 2)
        return
    workers.start("sync", 1)
    workers.start("writeback", 2)
    workers.start("default", 1)


def measure(args: argparse.Namespace, tmp: Path) -> bool:
    """Run the copy with writebacks beside it; False when no writeback landed during it."""
    import django

    django.setup()
    from django.core.management import call_command

    from clinics.models import Clinic, Connector, Integration
    from prescriptions.models import WritebackItem
    from prescriptions.tasks import writeback_sweep_task
    from records.models import SyncRun
    from records.sync import sync_run_create
    from records.tasks import sync_run_apply_task

    call_command("migrate", verbosity=0)
    site = EzyVetEmulator(clients=120, seed=3, rate_per_minute=0, endpoint_rate_per_minute=0)
    site.start()
    workers = Workers(tmp, concurrency=1)
    try:
        world = make_clinic(site, "wb")
        driver = Driver(world, count=0, batch=1)
        big = Clinic.objects.create(name="Big Clinic", slug="big")
        Integration.objects.create(clinic=big, connector=Connector.SYNCVET, status="live")
        first, _, _ = make_batches(args.clients, seed=7, out=tmp)
        start_workers(workers, args.layout)
        print(f"  workers: {args.layout}; {args.clients:,} clients in the first copy", flush=True)
        run, _ = sync_run_create(clinic=big, body=first.read_text(), trigger="command")
        sync_run_apply_task.delay(run.pk)
        started, approved, next_sweep = time.monotonic(), 0, 0.0
        while run.status != SyncRun.Status.SUCCEEDED and time.monotonic() - started < 600:
            if run.status == SyncRun.Status.FAILED:
                raise RuntimeError(f"the first copy failed: {run.error}")
            tick = time.monotonic()
            if run.status == SyncRun.Status.RUNNING:
                driver.approve(approved)  # one writeback committed a second
                approved += 1
            if tick >= next_sweep:
                writeback_sweep_task.delay()  # as beat does every 15 s
                next_sweep = tick + 15
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
            run.refresh_from_db()
        copy_seconds = (run.finished_at - run.started_at).total_seconds()
        rows = WritebackItem.objects.filter(clinic=world.clinic)
        deadline = time.monotonic() + 120
        while rows.exclude(status=WritebackItem.Status.DELIVERED).exists():
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        return report(rows, run, copy_seconds, approved)
    finally:
        workers.stop_all()
        site.stop()


def report(rows, run, copy_seconds: float, approved: int) -> bool:  # type: ignore[no-untyped-def]
    from prescriptions.models import WritebackItem

    during = [r for r in rows if run.started_at <= r.created_at <= run.finished_at]
    latencies = [
        (r.delivered_at - r.created_at).total_seconds()
        for r in during
        if r.status == WritebackItem.Status.DELIVERED and r.delivered_at
    ]
    undelivered = len(during) - len(latencies)
    print(f"  first copy: {run.total:,} clients applied in {copy_seconds:.1f} s")
    print(
        f"  writebacks committed during the copy: {len(during)} (of {approved}); "
        f"undelivered {undelivered}"
    )
    p95 = pct(latencies, 0.95)
    print(
        f"  commit -> delivered: p50 {pct(latencies, 0.5):.2f} s, p95 {p95:.2f} s, "
        f"max {max(latencies, default=0):.2f} s (target p95 <= 1 s: "
        f"{'met' if p95 <= 1.0 and not undelivered else 'MISSED'})"
    )
    if not during:
        # A copy shorter than a writeback's tick measures nothing: say so, and fail, so that a
        # quick run that has rotted into measuring nothing is noticed.
        print(
            "  NOTHING MEASURED: no writeback was committed while the copy ran (use more clients)"
        )
    return bool(during)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--layout", choices=["queues", "shared"], default="queues")
    parser.add_argument("--quick", action="store_true", help="10,000 clients")
    args = parser.parse_args()
    if args.quick:
        args.clients = 10_000
    with tempfile.TemporaryDirectory(prefix="vetsync-bench-wb-copy-") as tmp_name:
        tmp = Path(tmp_name)
        redis = RedisServer(tmp / "redis")
        redis.start()
        os.environ["DATABASE_URL"] = os.environ.get("DATABASE_URL") or PG_ADMIN
        try:
            with throwaway_database(tmp) as database_url:
                setup_env(tmp, database_url, redis.url)
                print(f"WriteBack during a first copy, on PostgreSQL and Redis (port {redis.port})")
                measured = measure(args, tmp)
        finally:
            redis.stop()
    return 0 if measured else 1


if __name__ == "__main__":
    sys.exit(main())
