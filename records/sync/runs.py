"""Sync runs: a batch stored as a queued run, a retry of what was quarantined, and the runs
the sweep restarts (waiting, abandoned by a dead worker, or stuck fetching)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, connections, router, transaction
from django.db.models import Q
from django.utils import timezone

from clinics.audit import audit_log
from clinics.models import Clinic
from records.fields import PIMS_ADDRESS_KEYS
from records.models import Client, Outcome, SyncLock, SyncRecordOutcome, SyncRun, SyncRunPayload
from records.sync.lock import LOCK_LEASE
from vetsync.lib import json_input
from vetsync.pims import agent, compiled
from vetsync.pims.records import PimsAddress, PimsClient


class SyncBusy(Exception):
    """Another run holds this clinic's sync lock."""


def sync_run_create(
    *,
    clinic: Clinic,
    body: str | bytes,
    trigger: str,
    requested_by: Any = None,
    allowed_sources: set[str] | None = None,
) -> tuple[SyncRun, bool]:
    """Store a batch as a queued run. A ``batch_id`` seen before returns that run (no-op).

    Raises ``agent.BatchError`` when the batch cannot be read at all.
    """
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        # Regular JSON is checked by the compiled reader (its entries are not read yet); the
        # careful reader says what is wrong with anything else.
        read = compiled.read_batch(body)
        payload = {**read[1], "clients": read[0]} if read else json_input.loads_envelope(text)
        del read
    except UnicodeDecodeError as exc:
        raise agent.BatchError(f"The batch is not valid UTF-8 JSON: {exc.reason}.") from exc
    except json_input.JsonInputError as exc:
        raise agent.BatchError(f"The batch is not valid UTF-8 JSON: {exc}.") from exc
    header = agent.parse_header(payload)
    if allowed_sources is not None and header.source.value not in allowed_sources:
        raise agent.BatchError(f"source {header.source.value!r} is not accepted with this token.")
    existing = SyncRun.objects.filter(clinic=clinic, batch_id=header.batch_id).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            run = SyncRun.objects.create(
                clinic=clinic,
                source=header.source.value,
                trigger=trigger,
                batch_id=header.batch_id,
                full=header.full,
                sent_at=header.sent_at,
                total=header.client_count,
                requested_by=requested_by if getattr(requested_by, "pk", None) else None,
            )
            payload_store(run_id=run.pk, body=text)
    except IntegrityError:
        # The same batch arrived twice at once: the other request created it.
        return SyncRun.objects.get(clinic=clinic, batch_id=header.batch_id), False
    return run, True


def payload_store(*, run_id: int, body: str) -> None:
    """Keep a run's batch until the run has applied it.

    By id: a payload created with its run would be cached on it, and the two in a reference
    cycle keep the text alive until Python's collector runs. On PostgreSQL by COPY: Django
    binds parameters into the query text, and a 70 MB batch quoted into a query cost 280 MB
    of the web process's memory (70 by COPY, which is also a third faster)."""
    connection = connections[router.db_for_write(SyncRunPayload)]
    if connection.vendor != "postgresql":
        SyncRunPayload.objects.create(run_id=run_id, body=body)
        return
    table = connection.ops.quote_name(SyncRunPayload._meta.db_table)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {table} (run_id, body) FROM STDIN") as copy,
    ):
        copy.write_row((run_id, body))


def sync_run_retry_quarantined(
    *, run: SyncRun, actor: Any, outcome_ids: Sequence[int] | None = None
) -> SyncRun | None:
    """Put a run's quarantined records (all, or the chosen ones) through the engine again.

    Only what was quarantined is resent. A quarantined client goes again whole (nothing of it
    was applied); a quarantined pet of an applied client goes with its owner as VetSync last
    saw the owner in the PIMS, so the retry can never roll the owner back to older values.
    Returns the new run, or None when nothing was left to retry.
    """
    outcomes = run.outcomes.filter(
        outcome=Outcome.QUARANTINED, retried_in__isnull=True, raw__isnull=False
    )
    if outcome_ids is not None:
        outcomes = outcomes.filter(pk__in=outcome_ids)
    entries: dict[str, dict[str, Any]] = {}
    chosen = list(outcomes)
    for outcome in chosen:
        raw = outcome.raw or {}
        owner_id = raw.get("pims_id")
        owner = (
            Client.objects.filter(clinic_id=run.clinic_id, pims_id=owner_id)
            .exclude(pims_id="")
            .first()
            if outcome.kind == "patient" and isinstance(owner_id, str) and owner_id
            else None
        )
        if owner is None:
            entries.setdefault(json.dumps(raw, sort_keys=True, default=str), raw)
            continue
        entry = entries.setdefault(f"owner:{owner.pims_id}", _entry_as_seen(owner))
        entry["patients"].extend(
            p
            for p in raw.get("patients") or []
            if isinstance(p, dict) and (p.get("pims_id") or "") == outcome.pims_id
        )
    if not chosen:
        return None
    now = timezone.now()
    body = json.dumps(
        {
            "source": run.source,
            "batch_id": f"retry-{run.pk}-{now:%Y%m%dT%H%M%S.%f}",
            "sent_at": now.isoformat(),
            "full": False,
            "clients": list(entries.values()),
        }
    )
    with transaction.atomic():
        retry, _ = sync_run_create(
            clinic=run.clinic, body=body, trigger=SyncRun.Trigger.RETRY, requested_by=actor
        )
        SyncRecordOutcome.objects.filter(pk__in=[o.pk for o in chosen]).update(retried_in=retry)
        audit_log(
            action="sync.quarantine_retried",
            actor=actor,
            clinic=run.clinic,
            obj=run,
            after={"retry_run": retry.pk, "records": len(chosen)},
        )
    return retry


def _entry_as_seen(client: Client) -> dict[str, Any]:
    """A batch entry of the client exactly as VetSync last saw it in the PIMS (no patients)."""
    seen = client.pims_seen or {}
    return agent.client_to_entry(
        PimsClient(
            pims_id=client.pims_id,
            first_name=seen.get("first_name", client.first_name),
            last_name=seen.get("last_name", client.last_name),
            email=seen.get("email", ""),
            phone=seen.get("phone", ""),
            address=PimsAddress(**{key: seen.get(key, "") for key in PIMS_ADDRESS_KEYS}),
            active=seen.get("active", True),
            modified_at=client.pims_modified_at,
        )
    )


def sync_run_resume(*, run: SyncRun) -> SyncRun:
    """Make a failed run eligible to run again from where it stopped.

    A run with its records stored is queued to apply the rest; an ezyVet pull that failed
    before its records were fetched goes back to fetching (from the unchanged watermark). A
    run whose batch retention removed stays as it is.
    """
    if run.status != SyncRun.Status.FAILED or run.pruned_at is not None:
        return run
    if SyncRunPayload.objects.filter(run=run).exists():
        run.status = SyncRun.Status.QUEUED
    elif run.trigger == SyncRun.Trigger.PULL:
        run.status = SyncRun.Status.FETCHING
        run.total = 0
        run.finished_at = None
    else:
        return run
    run.error, run.problem = "", ""
    run.save(update_fields=["status", "total", "finished_at", "error", "problem"])
    return run


def sync_runs_due() -> list[int]:
    """Runs waiting or abandoned by a dead worker (lease expired): the sweep restarts them."""
    now = timezone.now()
    stale_clinics = SyncLock.objects.filter(run__isnull=False, expires_at__lt=now).values(
        "clinic_id"
    )
    return list(
        SyncRun.objects.filter(
            Q(status=SyncRun.Status.QUEUED)
            | Q(status=SyncRun.Status.RUNNING, clinic_id__in=stale_clinics)
        )
        .order_by("created_at", "id")
        .values_list("pk", flat=True)
    )


def sync_fetches_abandoned() -> list[int]:
    """Pulls still fetching whose worker is gone (lease expired, or never taken): fetch again.

    The watermark has not moved, so a new fetch loses nothing.
    """
    now = timezone.now()
    held = SyncLock.objects.filter(run__isnull=False, expires_at__gte=now).values("run_id")
    return list(
        SyncRun.objects.filter(status=SyncRun.Status.FETCHING, created_at__lt=now - LOCK_LEASE)
        .exclude(pk__in=held)
        .values_list("pk", flat=True)
    )
