"""Retention of the sync history that grows with every run: what each run did to each record
(``SyncRecordOutcome``), a failed run's stored batch (``SyncRunPayload``) and the matcher's fits
(``MatchModelFit``) are removed once older than ``SYNC_HISTORY_RETENTION_DAYS``. A run's summary
and counts stay for good; so do quarantined records still waiting for a retry and every run
with a manual update still pending, until resolved.

Everything goes in bounded batches (``RETENTION_BATCH_ROWS`` rows, each batch its own
transaction), never one table-wide DELETE, so no lock is held for long. A tick cut short (its
time budget, a worker restart) is resumed by the next: a run is marked pruned only once
nothing of it is left to remove. Two ticks at once only repeat each other's deletes.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from records.models import (
    ManualUpdate,
    MatchModelFit,
    Outcome,
    SyncRecordOutcome,
    SyncRun,
    SyncRunPayload,
)

logger = logging.getLogger(__name__)

RUNS_PER_PASS = 200
# A stored batch can be a whole first copy (a 200,000-client extract is ~140 MB): few a time.
BATCHES_PER_DELETE = 5


@dataclass
class RetentionReport:
    """What one tick removed, and whether anything past the age is left for the next."""

    cutoff: dt.datetime
    runs: int = 0
    outcomes: int = 0
    batches: int = 0
    fits: int = 0
    finished: bool = False
    deletes: int = field(default=0, repr=False)


def retention_cutoff(now: dt.datetime | None = None) -> dt.datetime:
    """Sync history older than this goes."""
    return (now or timezone.now()) - dt.timedelta(days=settings.SYNC_HISTORY_RETENTION_DAYS)


def open_quarantine() -> Q:
    """A quarantined record staff can still retry (the run page offers it): kept."""
    return Q(outcome=Outcome.QUARANTINED, retried_in__isnull=True, raw__isnull=False)


def retention_prune(
    *,
    now: dt.datetime | None = None,
    batch_rows: int | None = None,
    seconds: float | None = None,
) -> RetentionReport:
    """Remove the sync history past its age, oldest runs first, until done or out of time."""
    now = now or timezone.now()
    batch = batch_rows or settings.RETENTION_BATCH_ROWS
    deadline = time.monotonic() + (seconds or settings.RETENTION_TICK_SECONDS)
    report = RetentionReport(cutoff=retention_cutoff(now))
    if not _prune_old_runs(report, batch=batch, deadline=deadline, now=now):
        return _logged(report)
    retried = SyncRecordOutcome.objects.filter(
        outcome=Outcome.QUARANTINED, retried_in__isnull=False, run__pruned_at__isnull=False
    )
    if not _delete_in_batches(retried, report, "outcomes", batch=batch, deadline=deadline):
        return _logged(report)
    newer_fit = MatchModelFit.objects.filter(
        clinic=OuterRef("clinic"),
        version=OuterRef("version"),
        created_at__gt=OuterRef("created_at"),
    )
    # The latest fit of each clinic stays whatever its age: it is that clinic's share of the
    # pooled prior (records.match_models).
    old_fits = MatchModelFit.objects.filter(created_at__lt=report.cutoff).filter(Exists(newer_fit))
    report.finished = _delete_in_batches(old_fits, report, "fits", batch=batch, deadline=deadline)
    return _logged(report)


def _prune_old_runs(
    report: RetentionReport, *, batch: int, deadline: float, now: dt.datetime
) -> bool:
    """Every run past the age, a pass of ``RUNS_PER_PASS`` at a time; False if out of time."""
    after: tuple[dt.datetime, int] | None = None
    while time.monotonic() < deadline:
        runs = _runs_to_prune(report.cutoff, after)
        if not runs:
            return True
        if not _prune_runs([pk for _, pk in runs], report, batch=batch, deadline=deadline, now=now):
            return False
        after = runs[-1]
    return False


def _runs_to_prune(
    cutoff: dt.datetime, after: tuple[dt.datetime, int] | None
) -> list[tuple[dt.datetime, int]]:
    """(created_at, id) of the next finished runs past the age, not pruned yet, with no manual
    update still pending, oldest first. ``after`` is where the tick's previous pass ended: the
    runs kept (updates pending) are walked once a tick, not once a pass."""
    pending = ManualUpdate.objects.filter(run=OuterRef("pk"), status=ManualUpdate.Status.PENDING)
    runs = SyncRun.objects.filter(
        pruned_at__isnull=True,
        created_at__lt=cutoff,
        status__in=[SyncRun.Status.SUCCEEDED, SyncRun.Status.FAILED],
    )
    if after is not None:
        runs = runs.filter(Q(created_at__gt=after[0]) | Q(created_at=after[0], pk__gt=after[1]))
    return list(
        runs.exclude(Exists(pending))
        .order_by("created_at", "pk")
        .values_list("created_at", "pk")[:RUNS_PER_PASS]
    )


def _prune_runs(
    run_ids: list[int], report: RetentionReport, *, batch: int, deadline: float, now: dt.datetime
) -> bool:
    """Remove these runs' stored batches and outcomes, then mark them pruned; False when the
    time ran out first (nothing is marked: the next tick carries on)."""
    batches = SyncRunPayload.objects.filter(run_id__in=run_ids)
    outcomes = SyncRecordOutcome.objects.filter(run_id__in=run_ids).exclude(open_quarantine())
    if not (
        _delete_in_batches(batches, report, "batches", batch=BATCHES_PER_DELETE, deadline=deadline)
        and _delete_in_batches(outcomes, report, "outcomes", batch=batch, deadline=deadline)
    ):
        return False
    report.runs += SyncRun.objects.filter(
        pk__in=run_ids,
        pruned_at__isnull=True,
        status__in=[SyncRun.Status.SUCCEEDED, SyncRun.Status.FAILED],
    ).update(pruned_at=now)
    return True


def _delete_in_batches(
    rows: QuerySet, report: RetentionReport, counter: str, *, batch: int, deadline: float
) -> bool:
    """Delete ``rows`` at most ``batch`` a statement, each in its own transaction; False if
    the deadline came first."""
    model = rows.model
    while True:
        if time.monotonic() >= deadline:
            return False
        with transaction.atomic():
            # One statement: DELETE … WHERE id IN (SELECT id … LIMIT batch).
            deleted, _ = model.objects.filter(pk__in=rows.values("pk")[:batch]).delete()
        report.deletes += 1
        setattr(report, counter, getattr(report, counter) + deleted)
        if deleted < batch:
            return True


def _logged(report: RetentionReport) -> RetentionReport:
    logger.info(
        "retention cutoff=%s runs=%d outcomes=%d batches=%d fits=%d deletes=%d finished=%s",
        report.cutoff.isoformat(),
        report.runs,
        report.outcomes,
        report.batches,
        report.fits,
        report.deletes,
        report.finished,
    )
    return report
