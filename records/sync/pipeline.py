"""Applying a run's chunks: the bookkeeping of each (``advance``, ``after_chunk``), and two
chunks in flight for a big run (``pipelines``, ``apply_pipelined``).

Each chunk is one transaction that also moves the run's position, so a worker killed mid-run
resumes after the last chunk that committed, whichever way the chunks were applied.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import Counter
from collections.abc import Callable, Sequence

from django.db import connection, connections, transaction

from records.models import Client, Patient, SyncRecordOutcome, SyncRun
from records.sync.chunk import Chunk
from records.sync.engine import Engine
from records.sync.lock import sync_lock_renew
from records.sync.plan import Entry
from vetsync.lib.bulk import ReservedIds
from vetsync.pims.records import QuarantinedRecord

ProgressCallback = Callable[[int, int], None]


def advance(run: SyncRun, counts: Counter[str], start: int, end: int) -> None:
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


def after_chunk(run: SyncRun, start: int, end: int, on_progress: ProgressCallback | None) -> None:
    if any(start < mark <= end for mark in STATS_REFRESH_AT):
        _refresh_planner_statistics()
    if on_progress is not None:
        on_progress(end, run.total)


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


# --- two chunks in flight ------------------------------------------------------------------

# Below this many chunks a run is applied one chunk after the other.
PIPELINE_MIN_CHUNKS = 4
# A chunk in flight waits for the one before it while holding its own row locks. Should that
# ever close a circle with another transaction (a staff action waiting on this chunk while
# the chunk before waits on the staff action), PostgreSQL cannot see it: a statement fails
# after this long instead, and the run stops, resumable, rather than hang.
PIPELINE_LOCK_TIMEOUT = "60s"


def pipelines(ranges: Sequence[tuple[int, int]], engine: Engine) -> bool:
    """Whether to keep two chunks in flight: a run big enough to gain, and no caller's
    transaction around the run (each chunk must commit). On SQLite, which has one writer,
    only a first copy (``Engine.fresh``): its chunks are decided outside the write lock."""
    return (
        (connection.vendor == "postgresql" or engine.fresh)
        and not connection.in_atomic_block
        and len(ranges) >= PIPELINE_MIN_CHUNKS
    )


class _Abandoned(Exception):
    """A chunk stopped because another chunk of the run failed."""


def apply_pipelined(
    run: SyncRun,
    owner: str,
    engine: Engine,
    entries: Sequence[Entry],
    extra: Sequence[QuarantinedRecord],
    ranges: Sequence[tuple[int, int]],
    on_progress: ProgressCallback | None,
) -> None:
    """Apply the chunks with two in flight: on PostgreSQL each in its own transaction on its
    own connection; on SQLite decided by a second thread while the one before is written.

    Raises ``Stale`` (SQLite) when a chunk decided ahead finds its customers changed: the
    caller goes on one chunk at a time from the run's position."""
    if connection.vendor == "sqlite":
        _OneWriter(run, owner, engine, entries, extra, ranges, on_progress).apply()
    else:
        _Pipeline(run, owner, engine, entries, extra, ranges, on_progress).apply()


class _Pipeline:
    """PostgreSQL: the chunks of one run, two in flight.

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
            advance(run, counts, start, end)
        after_chunk(run, start, end, self.on_progress)
        self.committed[k].set()


class Stale(Exception):
    """A chunk decided ahead read customers that have changed since (a staff action)."""


class _OneWriter:
    """SQLite: the chunks of one run, each decided while the one before it is written.

    SQLite has one writer, and most of a first copy's chunk is either Python (deciding, turning
    rows into database values) or SQLite's C (inserting rows, keeping indexes), which lets
    Python run: a second thread decides chunk k+1 while this one writes chunk k, on its own
    connection and outside the write lock. That needs what deciding needs without the lock:
    the ids of the new rows, reserved for the whole run before its first chunk
    (``ReservedIds``), and a first copy (``Engine.fresh``), whose records no chunk looks up.
    The customers a chunk merges are read as they were last committed; its write checks them
    again under the lock, and if any changed since (a staff action in between) it stops with
    ``Stale``, nothing of it written, for the caller to go on chunk by chunk.
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
        # One chunk waiting while one is written: two in memory at most.
        self.ready: queue.Queue[Chunk | BaseException] = queue.Queue(maxsize=1)
        self.stopped = threading.Event()
        self.helper: threading.Thread

    def apply(self) -> None:
        self._reserve_ids()
        helper = self.helper = threading.Thread(target=self._decide_all, name=f"sync-{self.run.pk}")
        helper.start()
        try:
            for start, end in self.ranges:
                self._write(self._next(), start, end)
        finally:
            self.stopped.set()
            while helper.is_alive():
                try:
                    self._drain()
                    helper.join(0.1)
                except BaseException:  # noqa: S112 (a time limit: the helper is not left behind)
                    continue

    def _reserve_ids(self) -> None:
        """The ids of every row the chunks may create: one per client, per pet, and one
        outcome row per record and per quarantined record. Unused ones are skipped."""
        entries = self.entries[self.ranges[0][0] :]
        clients = sum(client is not None for client, _ in entries)
        patients = sum(len(client.patients) for client, _ in entries if client is not None)
        records = clients + patients + sum(len(q) for _, q in entries) + len(self.extra)
        with transaction.atomic():
            reserved = ReservedIds({Client: clients, Patient: patients, SyncRecordOutcome: records})
        self.engine.take_ids = reserved.take

    def _decide_all(self) -> None:
        """The second thread: each chunk decided in order, handed over one at a time."""
        try:
            for k, (start, end) in enumerate(self.ranges):
                extra = self.extra if k == 0 else ()
                if not self._hand_over(self.engine.prepare(self.entries[start:end], extra)):
                    return
        except BaseException as exc:
            self._hand_over(exc)
        finally:
            connections.close_all()  # this thread's connection only

    def _hand_over(self, item: Chunk | BaseException) -> bool:
        """Wait for the writer to take ``item``; False once the run stopped."""
        while not self.stopped.is_set():
            try:
                self.ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _next(self) -> Chunk:
        while True:
            try:
                item = self.ready.get(timeout=0.5)
            except queue.Empty:
                if self.helper.is_alive():
                    continue
                raise RuntimeError("The thread deciding the run's chunks stopped.") from None
            if isinstance(item, BaseException):
                raise item
            return item

    def _drain(self) -> None:
        with contextlib.suppress(queue.Empty):
            self.ready.get_nowait()

    def _write(self, chunk: Chunk, start: int, end: int) -> None:
        with transaction.atomic():
            sync_lock_renew(self.run, self.owner)  # first: it takes the write lock
            if not self.engine.still_current(chunk):
                raise Stale(
                    f"Run {self.run.pk}: a customer that records {start:,}-{end:,} merge or "
                    "suggest changed after they were decided."
                )
            advance(self.run, self.engine.write(chunk), start, end)
        after_chunk(self.run, start, end, self.on_progress)
