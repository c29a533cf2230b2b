"""Applying a run: chunk by chunk, each chunk one transaction that also moves the run's
position; on PostgreSQL two chunks in flight on two connections."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

from django.db import connection, connections, transaction
from django.db.models import BinaryField, Func
from django.utils import timezone

from clinics.problems import ProblemKind
from clinics.services import integration_record_sync
from records.models import Client, Patient, SyncRun, SyncRunPayload
from records.sync.engine import Engine
from records.sync.lock import LockLost, sync_lock_acquire, sync_lock_release, sync_lock_renew
from records.sync.plan import Entry, match_plan, parse_entries
from records.sync.runs import SyncBusy
from vetsync.lib import collector, json_input
from vetsync.pims import compiled
from vetsync.pims.records import QuarantinedRecord

CHUNK_SIZE = 1000
# SQLite writes every page a transaction changed to its log at commit, and a first copy's
# chunks change the same index pages again and again: fewer, bigger chunks write each less
# often (100,000 clients: 22 s, 26-29 s in chunks of 1,000). A chunk holds the write lock for
# about a second. PostgreSQL gains nothing from bigger ones and keeps two in flight.
SQLITE_CHUNK_SIZE = 5000

ProgressCallback = Callable[[int, int], None]


def sync_run_process(
    *,
    run_id: int,
    chunk_size: int | None = None,
    on_progress: ProgressCallback | None = None,
    lock_owner: str | None = None,
) -> SyncRun:
    """Apply a queued (or interrupted) run, chunk by chunk. Safe to call twice.

    Raises ``SyncBusy`` when another worker holds the clinic's lock (for this run or another).
    ``lock_owner`` is given by a caller that already holds the lock (an ezyVet pull);
    ``chunk_size`` (clients a transaction) is the database's own by default.
    """
    if chunk_size is None:
        chunk_size = SQLITE_CHUNK_SIZE if connection.vendor == "sqlite" else CHUNK_SIZE
    run = SyncRun.objects.select_related("clinic").get(pk=run_id)
    if run.is_finished or run.status == SyncRun.Status.FETCHING:
        return run  # done, or its batch is still being fetched from the PIMS
    owner = lock_owner or uuid.uuid4().hex
    if not sync_lock_acquire(run, owner):
        raise SyncBusy(f"Another sync of {run.clinic} is running.")
    # A previous worker may have moved it on before its lease ran out.
    run.refresh_from_db(from_queryset=SyncRun.objects.select_related("clinic"))
    if run.is_finished:
        sync_lock_release(run, owner)
        return run
    try:
        _apply_run(run, owner, chunk_size, on_progress)
    except LockLost:
        raise  # another worker owns the run now: leave its status alone
    except Exception as exc:
        # The chunk in flight rolled back; everything before it stays applied and the run
        # resumes from its position when retried.
        run.status = SyncRun.Status.FAILED
        run.error = f"{type(exc).__name__}: {exc}"
        run.problem = ProblemKind.INTERNAL
        run.save(update_fields=["status", "error", "problem"])
        integration_record_sync(
            clinic_id=run.clinic_id, ok=False, error=run.error, kind=run.problem
        )
        sync_lock_release(run, owner)
        raise
    sync_lock_release(run, owner)
    return run


def _apply_run(
    run: SyncRun, owner: str, chunk_size: int, on_progress: ProgressCallback | None
) -> None:
    """Start (or resume) the run, apply its chunks still to apply, and mark it succeeded."""
    with collector.paused():  # 100,000s of records, and not one reference cycle among them
        entries, extra = _read_batch(run)
    # The records live as long as the run: a big one's collections need not walk them.
    with collector.spared() if len(entries) > chunk_size else nullcontext():
        _apply_entries(run, owner, chunk_size, on_progress, entries, extra)


def _apply_entries(
    run: SyncRun,
    owner: str,
    chunk_size: int,
    on_progress: ProgressCallback | None,
    entries: list[Entry],
    extra: list[QuarantinedRecord],
) -> None:
    """Start (or go on with) the run's chunks from its position; mark it succeeded."""
    changed = []
    if run.status != SyncRun.Status.RUNNING or run.started_at is None:
        run.status = SyncRun.Status.RUNNING
        run.started_at = run.started_at or timezone.now()
        run.error = ""
        changed += ["status", "started_at", "error"]
    if run.match_plan is None:
        run.match_plan = match_plan(run, entries)
        changed.append("match_plan")
    if changed:
        run.save(update_fields=changed)
    engine = Engine(run=run)
    if run.position == 0 and len(entries) > chunk_size:
        engine.fresh_start()  # a first copy's chunks need not look their records up
    ranges = _chunk_ranges(run.position, len(entries), chunk_size, bool(extra))
    if _pipelines(ranges):
        _apply_pipelined(run, owner, engine, entries, extra, ranges, on_progress)
    else:
        for start, end in ranges:
            with transaction.atomic():
                # First: on SQLite this takes the write lock that ``reserve_ids`` needs.
                sync_lock_renew(run, owner)
                chunk = engine.prepare(entries[start:end], extra)
                extra = []
                _advance(run, engine.write(chunk), start, end)
            _after_chunk(run, start, end, on_progress)
    with transaction.atomic():
        run.status = SyncRun.Status.SUCCEEDED
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "finished_at"])
        SyncRunPayload.objects.filter(run=run).delete()
        integration_record_sync(clinic_id=run.clinic_id, ok=True, watermark=run.pims_watermark)


class _Utf8(Func):
    """A text column as its UTF-8 bytes on SQLite: the compiled reader reads them as they are,
    where text would be a second copy of a big batch. PostgreSQL sends bytes as hexadecimal
    text (twice the size again): there the column is read as text, which the reader takes
    without a copy when it is ASCII."""

    output_field = BinaryField()  # bytes on SQLite, text (str) on PostgreSQL
    template = "%(expressions)s"

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return self.as_sql(
            compiler, connection, template="CAST(%(expressions)s AS BLOB)", **extra_context
        )


def _read_batch(run: SyncRun) -> tuple[list[Entry], list[QuarantinedRecord]]:
    """The run's entries, and the records a connector could not read (first chunk only)."""
    body = SyncRunPayload.objects.filter(run=run).values_list(_Utf8("body"), flat=True).first()
    if body is None:
        raise RuntimeError("The batch of this run is no longer stored.")
    # Entry by entry: a big first copy is never held as JSON objects and as records at once.
    # Regular JSON is split by the compiled reader, entries as their text; anything else is
    # read the careful way, which refuses it with its reason.
    compiled_batch = compiled.read_batch(body)
    if compiled_batch is not None:
        raw_entries, payload = compiled_batch
        entries = parse_entries(raw_entries, compiled.read_entry, compiled.entry_object)
        del raw_entries, compiled_batch
    else:
        text = body if isinstance(body, str) else body.decode("utf-8")
        payload = {}
        try:
            entries = parse_entries(json_input.member_items(text, "clients", payload))
        except json_input.RepeatedKey:  # read as the whole text says (the last "clients")
            payload = json_input.loads(text)
            raw_clients = payload.get("clients")
            entries = parse_entries(raw_clients if isinstance(raw_clients, list) else [])
        del text
    del body
    # Records a connector could not read (an ezyVet pull's) are quarantined with the
    # first chunk, so that they are written exactly once. Only a pull's body, which VetSync
    # wrote itself, says so: an agent's batch with a "quarantined" member could otherwise fail
    # its run or put made-up records in its report.
    extra = (
        [
            QuarantinedRecord(q["kind"], q["pims_id"], q["reason"], {}, q["client_pims_id"])
            for q in payload.get("quarantined", [])
        ]
        if run.position == 0 and run.trigger == SyncRun.Trigger.PULL
        else []
    )
    return entries, extra


def _chunk_ranges(position: int, total: int, chunk_size: int, extra: bool) -> list[tuple[int, int]]:
    """The (start, end) of each chunk still to apply; one empty chunk for ``extra`` alone."""
    ranges = [
        (start, min(start + chunk_size, total)) for start in range(position, total, chunk_size)
    ]
    return ranges or ([(position, position)] if extra else [])


def _advance(run: SyncRun, counts: Counter[str], start: int, end: int) -> None:
    """The last step of a chunk's transaction (its lease renewed): move the run on.

    The run moves only from where this chunk started: a chunk whose predecessor did not
    commit fails here rather than skip its records.
    """
    # "client.created" and the like (the run page's clients and pets apart) are kept beside
    # the counts by outcome that reports and callers read.
    merged = Counter(run.counts)
    merged.update({k: v for k, v in counts.items() if "." not in k})
    by_kind = Counter(run.kind_counts)
    by_kind.update({k: v for k, v in counts.items() if "." in k})
    moved = SyncRun.objects.filter(pk=run.pk, position=start).update(
        counts=dict(merged), kind_counts=dict(by_kind), position=end
    )
    if moved != 1:
        raise RuntimeError(f"Run {run.pk} is no longer at record {start}; nothing was applied.")
    run.counts, run.kind_counts, run.position = dict(merged), dict(by_kind), end


def _after_chunk(run: SyncRun, start: int, end: int, on_progress: ProgressCallback | None) -> None:
    if any(start < mark <= end for mark in STATS_REFRESH_AT):
        _refresh_planner_statistics()
    if on_progress is not None:
        on_progress(end, run.total)


# --- two chunks in flight ------------------------------------------------------------------

# Below this many chunks a run is applied one chunk after the other.
PIPELINE_MIN_CHUNKS = 4
# A chunk in flight waits for the one before it while holding its own row locks. Should that
# ever close a circle with another transaction (a staff action waiting on this chunk while
# the chunk before waits on the staff action), PostgreSQL cannot see it: a statement fails
# after this long instead, and the run stops, resumable, rather than hang.
PIPELINE_LOCK_TIMEOUT = "60s"


def _pipelines(ranges: Sequence[tuple[int, int]]) -> bool:
    """Whether to keep two chunks in flight: PostgreSQL (SQLite has one writer), a run big
    enough to gain, and no caller's transaction around the run (each chunk must commit)."""
    return (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and len(ranges) >= PIPELINE_MIN_CHUNKS
    )


class _Abandoned(Exception):
    """A chunk stopped because another chunk of the run failed."""


def _apply_pipelined(
    run: SyncRun,
    owner: str,
    engine: Engine,
    entries: Sequence[Entry],
    extra: Sequence[QuarantinedRecord],
    ranges: Sequence[tuple[int, int]],
    on_progress: ProgressCallback | None,
) -> None:
    """Apply the chunks with two in flight, each in its own transaction on its own connection."""
    _Pipeline(run, owner, engine, entries, extra, ranges, on_progress).apply()


class _Pipeline:
    """The chunks of one run, two in flight.

    Most of a chunk's time is either Python (deciding what to write, turning rows into
    database values) or the database (inserting rows, keeping indexes, checking constraints
    at commit); with two chunks in flight the two overlap on two cores. Chunks are prepared
    (read, locked, decided) in order, and each moves the run on only after the one before it
    has committed. Each chunk stays one transaction and the run still moves chunk by chunk in
    order, so a worker killed mid-run resumes exactly as before.

    Two chunks hold different PIMS ids, so they write different rows, and chunk k does not
    depend on what k-1 has not committed yet. They can lock the same row: a customer both
    chunks match. Then k waits in ``prepare`` until k-1 commits and reads the customer as k-1
    left it; the wait always runs from a later chunk to an earlier one, so the two never wait
    on each other. A customer k-1 merged is skipped at once (``merged_customers``: chunks are
    prepared in order), so the common case does not wait at all.
    """

    def __init__(
        self,
        run: SyncRun,
        owner: str,
        engine: Engine,
        entries: Sequence[Entry],
        extra: Sequence[QuarantinedRecord],
        ranges: Sequence[tuple[int, int]],
        on_progress: ProgressCallback | None,
    ) -> None:
        self.run, self.owner, self.engine = run, owner, engine
        self.entries, self.extra, self.ranges = entries, extra, ranges
        self.on_progress = on_progress
        self.prepared = [threading.Event() for _ in ranges]
        self.committed = [threading.Event() for _ in ranges]
        self.failures: list[BaseException] = []

    def apply(self) -> None:
        """The even chunks in this thread, the odd ones in a second; raise the first failure."""
        helper = threading.Thread(
            target=self._work_on_own_connection,
            args=(range(1, len(self.ranges), 2),),
            name=f"sync-{self.run.pk}",
        )
        helper.start()
        self._work(range(0, len(self.ranges), 2))
        while helper.is_alive():
            try:
                helper.join()
            except BaseException as exc:  # a time limit or Ctrl-C reaches this thread only
                # The helper stops at its next wait; the run is not left until it has.
                self._stop(exc)
        if self.failures:
            raise self.failures[0]

    def _stop(self, exc: BaseException) -> None:
        """Record a failure: every chunk in flight stops (rolls back) at its next wait."""
        if not isinstance(exc, _Abandoned):
            self.failures.append(exc)
        for event in (*self.prepared, *self.committed):
            event.set()

    def _wait(self, event: threading.Event) -> None:
        event.wait()
        if self.failures:
            raise _Abandoned

    def _work(self, indexes: range) -> None:
        try:
            for k in indexes:
                self._apply_chunk(k)
        except BaseException as exc:
            self._stop(exc)

    def _work_on_own_connection(self, indexes: range) -> None:
        try:
            self._work(indexes)
        finally:
            connections.close_all()  # this thread's connection only

    def _apply_chunk(self, k: int) -> None:
        run, (start, end) = self.run, self.ranges[k]
        if k:
            self._wait(self.prepared[k - 1])  # chunks are decided in order
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('lock_timeout', %s, true)", [PIPELINE_LOCK_TIMEOUT]
                )
            chunk = self.engine.prepare(self.entries[start:end], self.extra if k == 0 else ())
            self.prepared[k].set()
            counts = self.engine.write(chunk)
            if k:
                self._wait(self.committed[k - 1])  # the run moves on in order
            sync_lock_renew(run, self.owner)
            _advance(run, counts, start, end)
        _after_chunk(run, start, end, self.on_progress)
        self.committed[k].set()


# --- planner statistics --------------------------------------------------------------------

# A first copy grows the tables from nothing; PostgreSQL's statistics (refreshed by autovacuum
# only now and then) would still say "empty" and plan the engine's lookups and the foreign-key
# checks as scans. Once the tables hold thousands of rows the index plans are settled, and
# autovacuum takes over after the run.
STATS_REFRESH_AT = (2_000, 10_000)  # clients applied


def _refresh_planner_statistics() -> None:
    if connection.vendor != "postgresql":
        return  # SQLite keeps no statistics unless asked; its plans here do not need them
    tables = ", ".join(
        connection.ops.quote_name(model._meta.db_table) for model in (Client, Patient)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {tables}")
