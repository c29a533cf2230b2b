"""Benchmark: what the sync history costs on disk, and how fast retention removes it.

The figures a capacity model needs (issue 16, items 5-6), measured with PostgreSQL's
``pg_total_relation_size`` (table, TOAST and indexes) after real runs of the sync engine:

- bytes per stored batch client: a generated first copy (bench_sync_first_copy's batch, 1.5
  pets a client) stored as a run's batch, before it is applied;
- bytes per per-record outcome row: after the first copy, and after hourly 1 % deltas (the
  steady state: a delta's rows carry their notes);
- bytes per sync run row (a run's summary and counts are kept for good);
- retention: the runs aged past SYNC_HISTORY_RETENTION_DAYS, then ``retention_prune`` timed:
  rows removed a second, statements, the largest statement.

Steady-state size is then rate x retention: e.g. outcomes a day x 90 x bytes per row.

    python bench/bench_retention.py [--clients 100000] [--deltas 6] [--runs 50000]
                                    [--backend postgres|sqlite|both]
    python bench/bench_retention.py --quick      # 2,000 clients, 2 deltas, 2,000 runs (CI)

PostgreSQL is used when reachable at BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1
:5432/postgres); a throwaway database is created and dropped. On SQLite the sizes are not
measured (no per-table size); the retention timing is. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import harness  # noqa: E402  (bench/ is put on the path just above)
from bench_sync_first_copy import make_batches  # noqa: E402


def size(model: Any) -> int | None:
    """Table + TOAST + indexes, in bytes (PostgreSQL only)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size(%s)", [model._meta.db_table])
        return int(cursor.fetchone()[0])


def per(total: int | None, count: int) -> str:
    return "n/a (SQLite)" if total is None or not count else f"{total / count:,.0f} bytes"


def _delta_body(delta: dict[str, Any], n: int) -> str:
    """The k-th hourly delta: the same 1 % of clients, changed again an hour later."""
    stamp = f"2026-11-24T{10 + n:02d}:00:00Z"
    body = json.loads(json.dumps(delta))
    body["batch_id"] = f"bench-delta-{n}"
    for client in body["clients"]:
        client["modified_at"] = stamp
        client["email"] = f"n{n}-{client['email']}"
        for pet in client["patients"]:
            pet["weight"] = round(pet["weight"] + 0.1 * (n + 1), 1)
            pet["modified_at"] = stamp
    return json.dumps(body)


def sync_history(first: Path, delta: Path, n_deltas: int) -> None:
    from clinics.models import Clinic, Connector, Integration
    from records.models import SyncRecordOutcome, SyncRun, SyncRunPayload
    from records.sync import sync_run_create, sync_run_process

    clinic = Clinic.objects.create(name="Bench Clinic", slug="bench")
    Integration.objects.create(clinic=clinic, connector=Connector.SYNCVET, status="live")
    body = first.read_text()
    run, _ = sync_run_create(clinic=clinic, body=body, trigger=SyncRun.Trigger.COMMAND)
    print(
        f"  stored batch: {run.total:,} clients, {len(body) / run.total:,.0f} bytes of JSON a "
        f"client; on disk {per(size(SyncRunPayload), run.total)} a client (TOAST-compressed)"
    )
    del body
    run = sync_run_process(run_id=run.pk)
    rows = SyncRecordOutcome.objects.count()
    print(f"  first copy: {rows:,} outcome rows, {per(size(SyncRecordOutcome), rows)} a row")
    before, delta_rows = size(SyncRecordOutcome), 0
    template = json.loads(delta.read_text())
    for n in range(n_deltas):
        run, _ = sync_run_create(
            clinic=clinic, body=_delta_body(template, n), trigger=SyncRun.Trigger.COMMAND
        )
        run = sync_run_process(run_id=run.pk)
        delta_rows += sum(run.counts.values())
    after = size(SyncRecordOutcome)
    grown = None if before is None or after is None else after - before
    print(
        f"  {n_deltas} hourly deltas (1 % of clients each): {delta_rows:,} outcome rows, "
        f"{per(grown, delta_rows)} a row"
    )


def run_rows(n_runs: int) -> None:
    """Runs as the hourly deltas leave them: a summary row each, kept for good."""
    from django.utils import timezone

    from records.models import SyncRun
    from vetsync.lib.bulk import insert_rows

    clinic_id = SyncRun.objects.values_list("clinic_id", flat=True).first()
    before, now = size(SyncRun), timezone.now()
    insert_rows(
        SyncRun,
        (
            {
                "clinic_id": clinic_id,
                "source": "syncvet",
                "trigger": "agent",
                "batch_id": f"agent-{i:08d}",
                "status": "succeeded",
                "created_at": now - dt.timedelta(minutes=i),
                "started_at": now,
                "finished_at": now,
                "sent_at": now,
                "total": 14,
                "position": 14,
                "counts": {"updated": 12, "unchanged": 6, "manual_update": 1},
                "kind_counts": {"client.updated": 7, "patient.updated": 5, "client.unchanged": 6},
            }
            for i in range(n_runs)
        ),
    )
    after = size(SyncRun)
    grown = None if before is None or after is None else after - before
    print(f"  sync runs: {n_runs:,} summary rows, {per(grown, n_runs)} a run (kept for good)")


def prune() -> None:
    from django.conf import settings
    from django.db import connection
    from django.db.models import F
    from django.test.utils import CaptureQueriesContext

    from records.models import SyncRecordOutcome, SyncRun
    from records.retention import retention_prune

    # Every run one retention period and a day older than it is (their order kept).
    shift = dt.timedelta(days=settings.SYNC_HISTORY_RETENTION_DAYS + 1)
    SyncRun.objects.update(created_at=F("created_at") - shift)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE" if connection.vendor == "sqlite" else "VACUUM ANALYZE")
    rows = SyncRecordOutcome.objects.count()
    runs = SyncRun.objects.count()
    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        report = retention_prune(seconds=3600)
        elapsed = time.perf_counter() - started
    deletes = [q for q in captured if q["sql"].startswith("DELETE")]
    print(
        f"  retention: {report.outcomes:,} of {rows:,} outcome rows and {report.batches} stored "
        f"batches of {report.runs:,} of {runs:,} runs removed in {elapsed:.1f} s "
        f"({report.outcomes / max(elapsed, 1e-9):,.0f} rows/s), {len(deletes)} DELETE "
        f"statements of at most {settings.RETENTION_BATCH_ROWS:,} rows "
        f"(slowest {max((float(q['time']) for q in deletes), default=0) * 1000:.0f} ms); "
        f"finished: {report.finished}; outcome rows kept (runs with a manual update still "
        f"pending): {SyncRecordOutcome.objects.count():,}"
    )


def child(first: Path, delta: Path, n_deltas: int, n_runs: int) -> None:
    """Runs in its own process, on the database the environment names."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vetsync.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    sync_history(first, delta, n_deltas)
    run_rows(n_runs)
    prune()
    print(f"  database: {connection.vendor}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--deltas", type=int, default=6)
    parser.add_argument("--runs", type=int, default=50_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="postgres")
    parser.add_argument("--quick", action="store_true", help="2,000 clients, 2 deltas")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        first, delta, n_deltas, n_runs = args.child
        child(Path(first), Path(delta), int(n_deltas), int(n_runs))
        return
    if args.quick:
        args.clients, args.deltas, args.runs = 2000, 2, 2000
    with tempfile.TemporaryDirectory(prefix="vetsync-bench-") as tmp:
        tmpdir = Path(tmp)
        first, delta, _ = make_batches(args.clients, seed=7, out=tmpdir)
        print(
            f"Retention: a first copy of {args.clients:,} clients, {args.deltas} hourly deltas, "
            f"{args.runs:,} more run summaries"
        )
        for backend in harness.backends(args.backend):
            harness.run_child(
                backend,
                __file__,
                [str(first), str(delta), str(args.deltas), str(args.runs)],
                var_dir=tmpdir,
            )


if __name__ == "__main__":
    main()
