"""Applying a run: its batch read, its merges planned, then its chunks applied
(``records.sync.pipeline``): each chunk one transaction that also moves the run's position."""

from __future__ import annotations

import logging
import uuid
from contextlib import nullcontext
from typing import Any

from django.db import connection, transaction
from django.db.models import BinaryField, Func
from django.utils import timezone

from clinics.problems import ProblemKind
from clinics.services import integration_record_sync
from records.models import SyncRun, SyncRunPayload
from records.sync.engine import Engine
from records.sync.lock import LockLost, sync_lock_acquire, sync_lock_release, sync_lock_renew
from records.sync.pipeline import (
    ProgressCallback,
    Stale,
    advance,
    after_chunk,
    apply_pipelined,
    pipelines,
)
from records.sync.plan import Entry, match_plan, parse_entries
from records.sync.runs import SyncBusy
from vetsync.lib import collector, json_input
from vetsync.pims import compiled
from vetsync.pims.records import QuarantinedRecord

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1000
# SQLite writes every page a transaction changed to its log at commit, and a first copy's
# chunks change the same index pages again and again: fewer, bigger chunks write each less
# often (100,000 clients: 22 s, 26-29 s in chunks of 1,000). A chunk holds the write lock for
# about a second. PostgreSQL gains nothing from bigger ones and keeps two in flight.
SQLITE_CHUNK_SIZE = 5000


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
    if pipelines(ranges, engine):
        try:
            apply_pipelined(run, owner, engine, entries, extra, ranges, on_progress)
            ranges = []
        except Stale as exc:
            logger.info("%s Going on one chunk at a time.", exc)
            # From where the chunks that committed left the run: every record looked up.
            extra = extra if run.position == ranges[0][0] else []
            engine = Engine(run=run)
            ranges = _chunk_ranges(run.position, len(entries), chunk_size, bool(extra))
    for start, end in ranges:
        with transaction.atomic():
            # First: on SQLite this takes the write lock that ``reserve_ids`` needs.
            sync_lock_renew(run, owner)
            chunk = engine.prepare(entries[start:end], extra)
            extra = []
            advance(run, engine.write(chunk), start, end)
        after_chunk(run, start, end, on_progress)
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
