"""ezyVet pulls: a first full copy, then deltas on ``modified_at``, through the sync engine.

A pull is a run like any agent batch: it is created at once (status "fetching", so staff see
it and a second "Sync now" finds it), the pages are fetched under the clinic's sync lock, the
records are stored as one batch and then applied by ``sync_run_process``. The integration's
watermark moves forward in the transaction that finishes the run, never before: a pull that
fails or is interrupted is repeated from the old watermark, and the engine's idempotence
makes the overlap harmless.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from clinics.models import Connector, Integration
from clinics.problems import problem_kind
from clinics.services import CredentialsError, ezyvet_client, integration_record_sync
from clinics.sync_health import pull_slot_next
from records.models import SyncRun
from records.sync import (
    SyncBusy,
    payload_store,
    sync_lock_acquire,
    sync_lock_release,
    sync_lock_renew,
    sync_run_process,
)
from vetsync.pims.agent import client_to_entry
from vetsync.pims.ezyvet import EzyVetError

logger = logging.getLogger(__name__)

PULL_OVERLAP = dt.timedelta(minutes=5)
UNFINISHED = [SyncRun.Status.FETCHING, SyncRun.Status.QUEUED, SyncRun.Status.RUNNING]


def ezyvet_pull_start(
    *, integration: Integration, requested_by: Any = None, now: dt.datetime | None = None
) -> tuple[SyncRun, bool]:
    """The run for a new pull, or the clinic's unfinished run if there is one (not started).
    Either way the schedule's next pull moves to the clinic's next slot."""
    with transaction.atomic():
        locked = Integration.objects.select_for_update().filter(pk=integration.pk).first()
        now = now or timezone.now()
        if locked is not None:
            Integration.objects.filter(pk=locked.pk).update(
                next_pull_at=pull_slot_next(
                    clinic_id=locked.clinic_id, interval=locked.sync_interval, after=now
                )
            )
        unfinished = (
            SyncRun.objects.filter(clinic_id=integration.clinic_id, status__in=UNFINISHED)
            .order_by("created_at")
            .first()
        )
        if unfinished is not None:
            return unfinished, False
        run = SyncRun.objects.create(
            clinic_id=integration.clinic_id,
            source=Connector.EZYVET,
            trigger=SyncRun.Trigger.PULL,
            batch_id=f"ezyvet-{now:%Y%m%dT%H%M%S.%f}",
            full=integration.watermark is None,
            status=SyncRun.Status.FETCHING,
            requested_by=requested_by if getattr(requested_by, "pk", None) else None,
        )
        Integration.objects.filter(pk=integration.pk).update(last_pull_at=now)
    return run, True


def ezyvet_pull_run(*, run_id: int) -> SyncRun:
    """Fetch a pull's records from ezyVet, then apply them. Safe to call twice."""
    run, owner = _fetch(run_id)
    if run.status in (SyncRun.Status.FAILED, SyncRun.Status.SUCCEEDED):
        return run
    return sync_run_process(run_id=run.pk, lock_owner=owner or None)  # or finish applying


def ezyvet_pull_fetch(*, run_id: int) -> SyncRun:
    """Fetch and store a pull's records; the run is left queued (or failed) for the sync
    queue to apply, so a long first copy never holds a pull worker. Safe to call twice."""
    run, owner = _fetch(run_id)
    if owner:
        sync_lock_release(run, owner)
    return run


def _fetch(run_id: int) -> tuple[SyncRun, str]:
    """The run with its records stored, and the clinic's sync lock owner if this call took it
    ("" when the run was fetched already, or failed)."""
    run = SyncRun.objects.select_related("clinic").get(pk=run_id)
    if run.status != SyncRun.Status.FETCHING:
        return run, ""  # fetched already
    owner = uuid.uuid4().hex
    if not sync_lock_acquire(run, owner):
        raise SyncBusy(f"Another sync of {run.clinic} is running.")
    integration = Integration.objects.select_related("clinic").get(clinic_id=run.clinic_id)
    entries: list[dict[str, Any]] = []
    quarantined: list[dict[str, str]] = []
    try:
        with ezyvet_client(integration) as client:
            pull = client.pull(integration.watermark, overlap=PULL_OVERLAP)
            for batch in pull:
                entries.extend(client_to_entry(c) for c in batch.clients)
                quarantined.extend(
                    {
                        "kind": q.kind,
                        "pims_id": q.pims_id,
                        "reason": q.reason,
                        "client_pims_id": q.client_pims_id,
                    }
                    for q in batch.quarantined
                )
                SyncRun.objects.filter(pk=run.pk).update(total=len(entries))
                sync_lock_renew(run, owner)
    except (EzyVetError, CredentialsError) as exc:
        run.status = SyncRun.Status.FAILED
        run.error = f"ezyVet: {exc}"
        run.problem = problem_kind(exc)
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error", "problem", "finished_at"])
        integration_record_sync(
            clinic_id=run.clinic_id, ok=False, error=run.error, kind=run.problem
        )
        sync_lock_release(run, owner)
        return run, ""
    except BaseException:
        sync_lock_release(run, owner)
        raise
    body = json.dumps(
        {
            "source": Connector.EZYVET,
            "batch_id": run.batch_id,
            "sent_at": timezone.now().isoformat(),
            "full": pull.full,
            "clients": entries,
            "quarantined": quarantined,
        },
        default=str,
    )
    with transaction.atomic():
        payload_store(run_id=run.pk, body=body)
        run.total = len(entries)
        run.status = SyncRun.Status.QUEUED
        run.pims_watermark = pull.watermark if pull.complete else None
        run.save(update_fields=["total", "status", "pims_watermark"])
    return run, owner


def ezyvet_due_queryset(now: dt.datetime) -> QuerySet[Integration]:
    """Live ezyVet integrations whose slot (or back-off) has come and that have no
    unfinished run, earliest due first: one indexed query, however many clinics there are."""
    busy = SyncRun.objects.filter(status__in=UNFINISHED).values("clinic_id")
    return (
        Integration.objects.filter(connector=Connector.EZYVET, status=Integration.Status.LIVE)
        .filter(Q(next_pull_at__isnull=True) | Q(next_pull_at__lte=now))
        .exclude(credentials_ciphertext="")
        .exclude(clinic_id__in=busy)
        .order_by(F("next_pull_at").asc(nulls_first=True), "pk")
    )


def ezyvet_integrations_due(
    now: dt.datetime | None = None, *, limit: int | None = None
) -> list[Integration]:
    """The integrations due for a pull (at most ``limit``; default one dispatch batch)."""
    now = now or timezone.now()
    return list(ezyvet_due_queryset(now)[: limit or settings.EZYVET_DISPATCH_BATCH])


def ezyvet_pulls_dispatch(
    *, now: dt.datetime | None = None, batch: int | None = None, limit: int | None = None
) -> list[SyncRun]:
    """Start the due pulls: batches of ``batch`` rows locked with ``SKIP LOCKED`` (another
    dispatcher takes the others), each batch its own transaction; at most ``limit`` a call.

    Each started pull moves its integration's ``next_pull_at`` to its next slot in the same
    transaction, so a row is never due twice. On SQLite, which has no row locks, the
    ``IMMEDIATE`` transactions of the settings make dispatchers take turns instead.
    """
    now = now or timezone.now()
    batch = batch or settings.EZYVET_DISPATCH_BATCH
    limit = limit or settings.EZYVET_DISPATCH_MAX_PER_TICK
    started: list[SyncRun] = []
    while len(started) < limit:
        with transaction.atomic():
            taken = list(
                ezyvet_due_queryset(now).select_for_update(skip_locked=True)[
                    : min(batch, limit - len(started))
                ]
            )
            for integration in taken:
                run, created = ezyvet_pull_start(integration=integration, now=now)
                if created:
                    started.append(run)
        if not taken:
            break
    return started
