"""The sync engine: one place where PIMS records are applied by the field policy.

Every door (the agent API, ``ingest_batch``, ezyVet pulls, retries) creates a ``SyncRun`` with
the batch stored beside it and then calls ``sync_run_process``. The run is applied in chunks;
each chunk is one transaction that also moves the run's position, so a worker killed mid-batch
leaves no record half-applied and the next attempt resumes where the last commit ended. A
lease-based lock keeps one sync at a time per clinic. The field policy (DESIGN.md):

- new clients and pets are copied whole;
- client email, pet weight (with history) and deceased status are applied automatically;
- client name, client address and pet name are held as manual updates for staff;
- phone, birth date, breed, species, sex (and the rest) are kept as "PIMS differs" only.

Nothing here ever writes to a PIMS.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import IntegrityError, connection, connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from clinics.audit import audit_log
from clinics.models import AuditEvent, Clinic
from clinics.services import integration_record_sync
from records import hooks
from records.matching import (
    CustomerPool,
    Match,
    Person,
    Verdict,
    normalize_phone,
    normalize_text,
    plan_matches,
)
from records.models import (
    Client,
    ClientMerge,
    ManualUpdate,
    MatchRejection,
    Outcome,
    Patient,
    SyncLock,
    SyncRecordOutcome,
    SyncRun,
    SyncRunPayload,
    WeightRecord,
)
from vetsync.lib.bulk import AnyOf, RowInserter, bulk_update_rows, reserve_ids
from vetsync.pims import agent
from vetsync.pims.records import PimsAddress, PimsClient, PimsPatient, QuarantinedRecord

CHUNK_SIZE = 1000
LOCK_LEASE = dt.timedelta(minutes=2)
SYNC_ACTOR = "sync"

CLIENT_ADDRESS_FIELDS = ("line1", "line2", "city", "state", "postcode", "country")
# PIMS address keys → the pharmacy's Client fields.
ADDRESS_TO_CLIENT = {
    "line1": "address_line1",
    "line2": "address_line2",
    "city": "city",
    "state": "state",
    "postcode": "postcode",
    "country": "country",
}
CLIENT_UPDATE_FIELDS = [
    "first_name",
    "last_name",
    "email",
    "phone",
    "phone_normalized",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postcode",
    "country",
    "pims_id",
    "pims_seen",
    "pims_modified_at",
    "updated_at",
]
PATIENT_UPDATE_FIELDS = [
    "species",
    "breed",
    "sex",
    "birth_date",
    "weight",
    "weight_unit",
    "is_deceased",
    "deceased_on",
    "microchip",
    "pims_id",
    "pims_seen",
    "pims_modified_at",
    "updated_at",
]

ProgressCallback = Callable[[int, int], None]


class SyncBusy(Exception):
    """Another run holds this clinic's sync lock."""


# --- creating runs -------------------------------------------------------------------------


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
        payload = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
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
            SyncRunPayload.objects.create(run=run, body=text)
    except IntegrityError:
        # The same batch arrived twice at once: the other request created it.
        return SyncRun.objects.get(clinic=clinic, batch_id=header.batch_id), False
    return run, True


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
            address=PimsAddress(**{key: seen.get(key, "") for key in CLIENT_ADDRESS_FIELDS}),
            active=seen.get("active", True),
            modified_at=client.pims_modified_at,
        )
    )


# --- the lock ------------------------------------------------------------------------------


class LockLost(Exception):
    """This worker's lease ran out and another worker took the clinic's sync over."""


def sync_lock_acquire(run: SyncRun, owner: str) -> bool:
    """Take the clinic's lock for ``run`` on behalf of one worker (``owner``).

    A second worker with the same run (a duplicate message, the sweep) is refused while the
    first one's lease is valid: two workers must never apply one run side by side.
    """
    SyncLock.objects.get_or_create(clinic_id=run.clinic_id)
    now = timezone.now()
    claimed = (
        SyncLock.objects.filter(clinic_id=run.clinic_id)
        .filter(Q(run__isnull=True) | Q(expires_at__lt=now) | Q(run=run, owner=owner))
        .update(run=run, owner=owner, expires_at=now + LOCK_LEASE)
    )
    return claimed == 1


def sync_lock_renew(run: SyncRun, owner: str) -> None:
    """Extend the lease; raise ``LockLost`` (rolling back the chunk) if it is not ours."""
    renewed = SyncLock.objects.filter(clinic_id=run.clinic_id, run=run, owner=owner).update(
        expires_at=timezone.now() + LOCK_LEASE
    )
    if renewed != 1:
        raise LockLost(f"Run {run.pk} lost its lock to another worker.")


def sync_lock_release(run: SyncRun, owner: str) -> None:
    SyncLock.objects.filter(clinic_id=run.clinic_id, run=run, owner=owner).update(
        run=None, owner="", expires_at=None
    )


def sync_lock_holder(clinic: Clinic) -> SyncRun | None:
    """The run holding the clinic's lock right now, if any."""
    lock = SyncLock.objects.filter(
        clinic=clinic, run__isnull=False, expires_at__gte=timezone.now()
    ).select_related("run")
    found = lock.first()
    return found.run if found else None


# --- processing ----------------------------------------------------------------------------


Entry = tuple[PimsClient | None, list[QuarantinedRecord]]


def sync_run_process(
    *,
    run_id: int,
    chunk_size: int = CHUNK_SIZE,
    on_progress: ProgressCallback | None = None,
    lock_owner: str | None = None,
) -> SyncRun:
    """Apply a queued (or interrupted) run, chunk by chunk. Safe to call twice.

    Raises ``SyncBusy`` when another worker holds the clinic's lock (for this run or another).
    ``lock_owner`` is given by a caller that already holds the lock (an ezyVet pull).
    """
    run = SyncRun.objects.select_related("clinic").get(pk=run_id)
    if run.is_finished or run.status == SyncRun.Status.FETCHING:
        return run  # done, or its batch is still being fetched from the PIMS
    owner = lock_owner or uuid.uuid4().hex
    if not sync_lock_acquire(run, owner):
        raise SyncBusy(f"Another sync of {run.clinic} is running.")
    run.refresh_from_db()  # a previous worker may have moved it on before its lease ran out
    if run.is_finished:
        sync_lock_release(run, owner)
        return run
    try:
        payload_row = SyncRunPayload.objects.filter(run=run).first()
        if payload_row is None:
            raise RuntimeError("The batch of this run is no longer stored.")
        payload = json.loads(payload_row.body)
        entries = _parse_entries(payload.get("clients", []))
        # Records a connector could not read (an ezyVet pull's) are quarantined with the
        # first chunk, so that they are written exactly once.
        extra = (
            [
                QuarantinedRecord(q["kind"], q["pims_id"], q["reason"], {}, q["client_pims_id"])
                for q in payload.get("quarantined", [])
            ]
            if run.position == 0
            else []
        )
        del payload
        if run.status != SyncRun.Status.RUNNING or run.started_at is None:
            run.status = SyncRun.Status.RUNNING
            run.started_at = run.started_at or timezone.now()
            run.error = ""
            run.save(update_fields=["status", "started_at", "error"])
        if run.match_plan is None:
            run.match_plan = _plan(run, entries)
            run.save(update_fields=["match_plan"])
        engine = _Engine(run=run)
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
    except LockLost:
        raise  # another worker owns the run now: leave its status alone
    except Exception as exc:
        # The chunk in flight rolled back; everything before it stays applied and the run
        # resumes from its position when retried.
        run.status = SyncRun.Status.FAILED
        run.error = f"{type(exc).__name__}: {exc}"
        run.save(update_fields=["status", "error"])
        integration_record_sync(clinic_id=run.clinic_id, ok=False, error=run.error)
        sync_lock_release(run, owner)
        raise
    sync_lock_release(run, owner)
    return run


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
    merged = Counter(run.counts)
    merged.update(counts)
    moved = SyncRun.objects.filter(pk=run.pk, position=start).update(
        counts=dict(merged), position=end
    )
    if moved != 1:
        raise RuntimeError(f"Run {run.pk} is no longer at record {start}; nothing was applied.")
    run.counts, run.position = dict(merged), end


def _after_chunk(run: SyncRun, start: int, end: int, on_progress: ProgressCallback | None) -> None:
    if any(start < mark <= end for mark in STATS_REFRESH_AT):
        _refresh_planner_statistics()
    if on_progress is not None:
        on_progress(end, run.total)


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
    engine: _Engine,
    entries: Sequence[Entry],
    extra: Sequence[QuarantinedRecord],
    ranges: Sequence[tuple[int, int]],
    on_progress: ProgressCallback | None,
) -> None:
    """Apply the chunks with two in flight, each in its own transaction on its own connection.

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
    prepared = [threading.Event() for _ in ranges]
    committed = [threading.Event() for _ in ranges]
    failures: list[BaseException] = []

    def stop(exc: BaseException) -> None:
        """Record a failure: every chunk in flight stops (rolls back) at its next wait."""
        if not isinstance(exc, _Abandoned):
            failures.append(exc)
        for event in (*prepared, *committed):
            event.set()

    def wait(event: threading.Event) -> None:
        event.wait()
        if failures:
            raise _Abandoned

    def work(indexes: range) -> None:
        try:
            for k in indexes:
                start, end = ranges[k]
                if k:
                    wait(prepared[k - 1])  # chunks are decided in order
                with transaction.atomic():
                    with connection.cursor() as cursor:
                        cursor.execute(
                            "SELECT set_config('lock_timeout', %s, true)", [PIPELINE_LOCK_TIMEOUT]
                        )
                    chunk = engine.prepare(entries[start:end], extra if k == 0 else ())
                    prepared[k].set()
                    counts = engine.write(chunk)
                    if k:
                        wait(committed[k - 1])  # the run moves on in order
                    sync_lock_renew(run, owner)
                    _advance(run, counts, start, end)
                _after_chunk(run, start, end, on_progress)
                committed[k].set()
        except BaseException as exc:
            stop(exc)

    def work_on_own_connection(indexes: range) -> None:
        try:
            work(indexes)
        finally:
            connections.close_all()  # this thread's connection only

    helper = threading.Thread(
        target=work_on_own_connection, args=(range(1, len(ranges), 2),), name=f"sync-{run.pk}"
    )
    helper.start()
    work(range(0, len(ranges), 2))
    while helper.is_alive():
        try:
            helper.join()
        except BaseException as exc:  # a time limit or Ctrl-C reaches this thread only
            stop(exc)  # the helper stops at its next wait; the run is not left until it has
    if failures:
        raise failures[0]


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


def sync_run_resume(*, run: SyncRun) -> SyncRun:
    """Make a failed run eligible to run again from where it stopped."""
    if run.status == SyncRun.Status.FAILED and SyncRunPayload.objects.filter(run=run).exists():
        run.status = SyncRun.Status.QUEUED
        run.save(update_fields=["status"])
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


def _parse_entries(raw_clients: list[Any]) -> list[Entry]:
    """Validate every entry; a pims_id seen earlier in the batch is quarantined as a repeat."""
    entries: list[Entry] = []
    seen_clients: set[str] = set()
    seen_patients: set[str] = set()
    for raw in raw_clients:
        client, quarantined = agent.parse_client_entry(raw)
        if client is not None:
            if client.pims_id in seen_clients:
                reason = f"Client {client.pims_id} appears more than once in this batch."
                quarantined = [QuarantinedRecord("client", client.pims_id, reason, dict(raw))]
                client = None
            else:
                seen_clients.add(client.pims_id)
                kept = []
                for patient in client.patients:
                    if patient.pims_id in seen_patients:
                        quarantined.append(
                            QuarantinedRecord(
                                "patient",
                                patient.pims_id,
                                f"Patient {patient.pims_id} appears under two clients in "
                                "this batch.",
                                dict(raw),
                                client.pims_id,
                            )
                        )
                    else:
                        seen_patients.add(patient.pims_id)
                        kept.append(patient)
                if len(kept) != len(client.patients):
                    client = _replace_patients(client, tuple(kept))
        entries.append((client, quarantined))
    return entries


def _replace_patients(client: PimsClient, patients: tuple[PimsPatient, ...]) -> PimsClient:
    return replace(client, patients=patients)


def _plan(run: SyncRun, entries: list[Entry]) -> dict[str, list[Any]]:
    """Merge verdicts for the batch's clients that VetSync has never seen."""
    clinic = run.clinic
    batch_ids = [c.pims_id for c, _ in entries if c is not None]
    linked = {
        pims_id
        for (pims_id,) in _by_pims_id(
            Client.objects.all(), clinic.pk, batch_ids, fields=("pims_id",)
        )
    }
    new_clients = [c for c, _ in entries if c is not None and c.pims_id not in linked]
    if not new_clients:
        return {}  # a delta of known clients: nobody to match
    customers = Client.objects.filter(clinic=clinic, pims_id="", merged_into__isnull=True).exclude(
        customer_ref=""
    )
    region = clinic.country or "US"
    pool = CustomerPool(rejected=rejected_pairs(clinic))
    for person, _ in people_of(customers, key="pk", region=region, unlinked_pets_only=True):
        pool.add(person)
    if not pool:
        return {}
    people = [_person(client, region) for client in new_clients]
    plan = plan_matches(pool, people)
    return {
        pims_id: [m.verdict.value, m.customer_key, m.rule, m.score] for pims_id, m in plan.items()
    }


def rejected_pairs(clinic: Clinic) -> set[tuple[str, str]]:
    """(customer id, PIMS id) pairs staff said are different people."""
    return {
        (str(customer_id), pims_id)
        for customer_id, pims_id in MatchRejection.objects.filter(clinic=clinic).values_list(
            "customer_id", "pims_id"
        )
    }


def people_of(
    clients: Any, *, key: str, region: str, unlinked_pets_only: bool = False
) -> list[tuple[Person, int]]:
    """The comparable form of each client (keyed by ``key``: "pk" or "pims_id"), with its pk."""
    rows = list(
        clients.order_by().values_list(
            "pk", key, "first_name", "last_name", "email", "phone", "address_line1", "postcode"
        )
    )
    pet_names: dict[int, list[str]] = {}
    # By lists of ids rather than a subquery: on freshly loaded tables PostgreSQL has no
    # statistics yet and plans the subquery as a nested loop of scans (seconds, not ms).
    pks = [row[0] for row in rows]
    for start in range(0, len(pks), 1000):
        pets = Patient.objects.filter(client_id__in=pks[start : start + 1000]).order_by()
        if unlinked_pets_only:
            pets = pets.filter(pims_id="")
        for client_id, name in pets.values_list("client_id", "name"):
            pet_names.setdefault(client_id, []).append(name)
    return [
        (
            Person.build(
                key=str(keyed),
                first_name=first,
                last_name=last,
                email=email,
                phone=phone,
                line1=line1,
                postcode=postcode,
                pet_names=pet_names.get(pk, ()),
                region=region,
            ),
            pk,
        )
        for pk, keyed, first, last, email, phone, line1, postcode in rows
    ]


def _by_pims_id(
    queryset: Any, clinic_id: int, pims_ids: Sequence[str], *, fields: Sequence[str] = ()
) -> list[Any]:
    """The clinic's rows with these PIMS ids, 1,000 ids per query (10,000 on PostgreSQL).

    The query repeats the condition of the (clinic, pims_id) partial unique constraint, so
    every planner reads that index; another clinic's rows (numeric ids repeat across PIMS)
    are never read or locked.
    """
    found: list[Any] = []
    postgres = connection.vendor == "postgresql"
    step = 10_000 if postgres else 1000  # one array parameter on PostgreSQL, not one per id
    for start in range(0, len(pims_ids), step):
        ids = pims_ids[start : start + step]
        match = AnyOf(F("pims_id"), list(ids)) if postgres else Q(pims_id__in=ids)
        part = (
            queryset.filter(match, clinic_id=clinic_id)
            .exclude(pims_id="")
            .order_by("pk")  # rows locked in order
        )
        found.extend(part.values_list(*fields) if fields else part)
    return found


def _person(client: PimsClient, region: str) -> Person:
    return Person.build(
        key=client.pims_id,
        first_name=client.first_name,
        last_name=client.last_name,
        email=client.email,
        phone=client.phone,
        line1=client.address.line1,
        postcode=client.address.postcode,
        pet_names=[p.name for p in client.patients],
        region=region,
    )


# --- the field policy ----------------------------------------------------------------------


def client_seen(client: PimsClient) -> dict[str, Any]:
    """The PIMS's values for a client, as kept in ``Client.pims_seen``."""
    return {
        "first_name": client.first_name,
        "last_name": client.last_name,
        "email": client.email,
        "phone": client.phone,
        **{key: getattr(client.address, key) for key in CLIENT_ADDRESS_FIELDS},
        "active": client.active,
    }


def patient_seen(patient: PimsPatient) -> dict[str, Any]:
    """The PIMS's values for a pet, as kept in ``Patient.pims_seen``."""
    return {
        "name": patient.name,
        "species": patient.species,
        "breed": patient.breed,
        "sex": patient.sex,
        "birth_date": patient.birth_date.isoformat() if patient.birth_date else None,
        "weight": str(patient.weight) if patient.weight is not None else None,
        "weight_unit": patient.weight_unit.value,
        "deceased": patient.deceased,
        "deceased_on": patient.deceased_on.isoformat() if patient.deceased_on else None,
        "microchip": patient.microchip,
        "active": patient.active,
    }


def _changed(old: dict[str, Any], new: dict[str, Any], keys: Sequence[str]) -> bool:
    return any(old.get(key) != new.get(key) for key in keys)


@dataclass(frozen=True, slots=True)
class NewRef:
    """A client or pet this chunk creates, with the id reserved for it (``reserve_ids``)."""

    pk: int


def _ref(obj: Client | Patient | NewRef | None) -> int | None:
    return None if obj is None else obj.pk


@dataclass
class _Held:
    """A manual update the chunk wants pending: created, or refreshed in place."""

    kind: str
    client: Client
    patient: Patient | None
    current: dict[str, Any]
    proposed: dict[str, Any]


@dataclass
class _Chunk:
    """Everything one chunk writes, flushed with bulk operations in one transaction."""

    # New rows are plain dicts, not model instances: building an instance per row would cost
    # more than inserting it.
    new_clients: list[dict[str, Any]] = field(default_factory=list)
    changed_clients: dict[int, Client] = field(default_factory=dict)
    new_patients: list[dict[str, Any]] = field(default_factory=list)
    changed_patients: dict[int, Patient] = field(default_factory=dict)
    weights: list[dict[str, Any]] = field(default_factory=list)
    held: list[_Held] = field(default_factory=list)
    settled: list[tuple[Client, Patient | None, str]] = field(default_factory=list)
    matches: list[tuple[Client, NewRef, Match]] = field(default_factory=list)
    merges: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    audits: list[dict[str, Any]] = field(default_factory=list)
    deceased: list[Patient] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    now: dt.datetime = field(default_factory=timezone.now)
    # Ids reserved for the clients and pets the chunk creates.
    client_ids: Iterator[int] = field(default_factory=lambda: iter(()))
    patient_ids: Iterator[int] = field(default_factory=lambda: iter(()))
    # The new rows as database values, ready to send (``_Engine._seal``).
    inserts: list[RowInserter] = field(default_factory=list)


class _Engine:
    def __init__(self, *, run: SyncRun) -> None:
        self.run = run
        self.clinic = run.clinic
        self.region = self.clinic.country or "US"
        self.plan = {
            pims_id: Match(Verdict(v), key, rule, score)
            for pims_id, (v, key, rule, score) in (run.match_plan or {}).items()
        }
        # Customers this run has merged. A chunk prepared while the one before it is still
        # being written (``_apply_pipelined``) skips them rather than wait for their row locks.
        self.merged_customers: set[int] = set()

    def prepare(
        self, entries: Sequence[Entry], quarantined: Sequence[QuarantinedRecord] = ()
    ) -> _Chunk:
        """Read (and lock) what the chunk touches and decide everything it will write.

        Writes nothing: the chunk's rows are written by ``write``, in the same transaction.
        On SQLite that transaction must already hold the write lock (``reserve_ids``).
        """
        chunk = _Chunk()
        for record in quarantined:
            self._quarantine(chunk, record)
        clients = [client for client, _ in entries if client is not None]
        existing = {
            c.pims_id: c
            # Locked for the chunk: a staff action on the same client waits for the commit
            # instead of being overwritten by values read before it.
            for c in _by_pims_id(
                Client.objects.select_for_update(), self.clinic.pk, [c.pims_id for c in clients]
            )
        }
        existing_patients = {
            p.pims_id: p
            for p in _by_pims_id(
                Patient.objects.select_for_update(),
                self.clinic.pk,
                [p.pims_id for c in clients for p in c.patients],
            )
        }
        customer_ids = [
            customer_id
            for c in clients
            if c.pims_id in self.plan and c.pims_id not in existing
            if (customer_id := int(self.plan[c.pims_id].customer_key)) not in self.merged_customers
        ]
        customers = {
            c.pk: c
            for c in Client.objects.select_for_update()
            .filter(pk__in=customer_ids, pims_id="", merged_into__isnull=True)
            .order_by("pk")
            if c.clinic_id == self.clinic.pk
        }
        chunk.client_ids = iter(
            reserve_ids(Client, sum(c.pims_id not in existing for c in clients))
        )
        chunk.patient_ids = iter(
            reserve_ids(
                Patient,
                sum(p.pims_id not in existing_patients for c in clients for p in c.patients),
            )
        )
        customer_pets: dict[int, list[Patient]] = {}
        for pet in (
            Patient.objects.select_for_update()
            .filter(client_id__in=list(customers), pims_id="")
            .order_by("pk")
        ):
            customer_pets.setdefault(pet.client_id, []).append(pet)

        for client, quarantined in entries:
            for record in quarantined:
                self._quarantine(chunk, record)
            if client is None:
                continue
            current = existing.get(client.pims_id)
            if current is not None:
                self._update_client(chunk, current, client, existing_patients)
                continue
            match = self.plan.get(client.pims_id)
            customer = customers.get(int(match.customer_key)) if match else None
            if match and customer and match.verdict == Verdict.MERGE:
                self._merge(
                    chunk,
                    customer,
                    client,
                    match,
                    customer_pets.get(customer.pk, []),
                    existing_patients,
                )
            else:
                created = self._create_client(chunk, client, existing_patients)
                # A customer merged earlier in this chunk is no longer anyone's candidate.
                if match and customer and not customer.pims_id:
                    chunk.matches.append((customer, created, match))
                    self._outcome(
                        chunk,
                        "client",
                        client.pims_id,
                        Outcome.POSSIBLE_MATCH,
                        client=created,
                        customer_ref=customer.customer_ref,
                        detail=f"Possible match with customer {customer.customer_ref} "
                        f"({customer.full_name}): {match.rule}.",
                        replace_last=True,
                    )
        self._seal(chunk)
        return chunk

    def _seal(self, chunk: _Chunk) -> None:
        """Turn the chunk's new rows into database values, so writing is only sending them."""
        chunk.inserts = [
            RowInserter(Client, with_pk=True).extend(chunk.new_clients),
            RowInserter(Patient, with_pk=True).extend(chunk.new_patients),
            RowInserter(WeightRecord).extend(chunk.weights),
            RowInserter(ClientMerge).extend(chunk.merges),
            RowInserter(SyncRecordOutcome).extend(chunk.outcomes),
            RowInserter(AuditEvent).extend(chunk.audits),
        ]

    def write(self, chunk: _Chunk) -> Counter[str]:
        """Write what ``prepare`` decided; return the chunk's counts by outcome."""
        self._flush(chunk)
        return chunk.counts

    # --- outcomes --------------------------------------------------------------------------

    def _outcome(
        self,
        chunk: _Chunk,
        kind: str,
        pims_id: str,
        outcome: str,
        *,
        client: Client | NewRef | None = None,
        patient: Patient | NewRef | None = None,
        customer_ref: str = "",
        detail: str = "",
        raw: dict[str, Any] | None = None,
        replace_last: bool = False,
    ) -> None:
        if not customer_ref and isinstance(client, Client):
            customer_ref = client.customer_ref
        row = {
            "run_id": self.run.pk,
            "kind": kind,
            "pims_id": pims_id[:64],  # a too-long id is the quarantine reason, not a crash
            "outcome": outcome,
            "client_id": _ref(client),
            "patient_id": _ref(patient),
            "customer_ref": customer_ref,
            "detail": detail[:2000],
            "raw": raw,
        }
        if replace_last:
            # The client's own row (written when it was created) becomes the possible match.
            for index in range(len(chunk.outcomes) - 1, -1, -1):
                previous = chunk.outcomes[index]
                if previous["kind"] == "client" and previous["pims_id"] == pims_id:
                    chunk.counts[previous["outcome"]] -= 1
                    chunk.outcomes[index] = row
                    chunk.counts[outcome] += 1
                    return
        chunk.outcomes.append(row)
        chunk.counts[outcome] += 1

    def _quarantine(self, chunk: _Chunk, record: QuarantinedRecord) -> None:
        self._outcome(
            chunk,
            record.kind,
            record.pims_id,
            Outcome.QUARANTINED,
            detail=record.reason,
            # Only a batch entry can be retried; a connector's unreadable record cannot.
            # NUL characters are dropped: PostgreSQL's jsonb cannot hold them.
            raw=json.loads(json.dumps(record.raw, default=str).replace("\\u0000", ""))
            if record.raw
            else None,
        )

    def _audit(
        self,
        chunk: _Chunk,
        action: str,
        obj: Client | Patient,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        chunk.audits.append(
            {
                "created_at": chunk.now,
                "actor_label": SYNC_ACTOR,
                "clinic_id": self.clinic.pk,
                "action": action,
                "object_type": obj._meta.label_lower,
                "object_id": str(obj.pk),
                "object_repr": str(obj)[:200],
                "before": before,
                "after": {**(after or {}), "run": self.run.pk},
            }
        )

    # --- new records -----------------------------------------------------------------------

    def _create_client(
        self, chunk: _Chunk, pims: PimsClient, existing_patients: dict[str, Patient]
    ) -> NewRef:
        client = NewRef(next(chunk.client_ids))
        row = {
            "id": client.pk,
            "clinic_id": self.clinic.pk,
            "first_name": pims.first_name,
            "last_name": pims.last_name,
            "email": pims.email,
            "phone": pims.phone,
            "phone_normalized": normalize_phone(pims.phone, self.region),
            "address_line1": pims.address.line1,
            "address_line2": pims.address.line2,
            "city": pims.address.city,
            "state": pims.address.state,
            "postcode": pims.address.postcode,
            "country": pims.address.country or self.clinic.country,
            "is_active": pims.active,
            "pims_id": pims.pims_id,
            "pims_seen": client_seen(pims),
            "pims_modified_at": pims.modified_at,
            "created_at": chunk.now,
            "updated_at": chunk.now,
        }
        chunk.new_clients.append(row)
        self._outcome(chunk, "client", pims.pims_id, Outcome.CREATED, client=client)
        for patient in pims.patients:
            self._patient_for(chunk, client, patient, existing_patients)
        return client

    def _create_patient(self, chunk: _Chunk, client: Client | NewRef, pims: PimsPatient) -> NewRef:
        patient = NewRef(next(chunk.patient_ids))
        row = {
            "id": patient.pk,
            "clinic_id": self.clinic.pk,
            "client_id": _ref(client),
            "name": pims.name,
            "species": pims.species,
            "breed": pims.breed,
            "sex": pims.sex,
            "birth_date": pims.birth_date,
            "weight": pims.weight,
            "weight_unit": pims.weight_unit.value,
            "is_deceased": pims.deceased,
            "deceased_on": pims.deceased_on if pims.deceased else None,
            "microchip": pims.microchip,
            "is_active": pims.active,
            "pims_id": pims.pims_id,
            "pims_seen": patient_seen(pims),
            "pims_modified_at": pims.modified_at,
            "created_at": chunk.now,
            "updated_at": chunk.now,
        }
        chunk.new_patients.append(row)
        if pims.weight is not None:
            chunk.weights.append(self._weighing(chunk, patient, pims))
        self._outcome(
            chunk, "patient", pims.pims_id, Outcome.CREATED, client=client, patient=patient
        )
        return patient

    def _weighing(
        self, chunk: _Chunk, patient: Patient | NewRef, pims: PimsPatient
    ) -> dict[str, Any]:
        return {
            "patient_id": _ref(patient),
            "weight": pims.weight,
            "unit": pims.weight_unit.value,
            "recorded_at": pims.modified_at or chunk.now,
            "source": WeightRecord.Source.PIMS,
            "run_id": self.run.pk,
        }

    def _patient_for(
        self,
        chunk: _Chunk,
        client: Client | NewRef,
        pims: PimsPatient,
        existing_patients: dict[str, Patient],
    ) -> None:
        current = existing_patients.get(pims.pims_id)
        if current is None:
            self._create_patient(chunk, client, pims)
        elif isinstance(client, NewRef) or current.client_id != client.pk:
            self._outcome(
                chunk,
                "patient",
                pims.pims_id,
                Outcome.QUARANTINED,
                client=client,
                patient=current,
                detail=f"In VetSync this pet belongs to another client (id {current.client_id}); "
                "a change of owner is not applied automatically.",
            )
        else:
            self._update_patient(chunk, client, current, pims)

    # --- merging ---------------------------------------------------------------------------

    def _merge(
        self,
        chunk: _Chunk,
        customer: Client,
        pims: PimsClient,
        match: Match,
        pets: list[Patient],
        existing_patients: dict[str, Patient],
    ) -> None:
        snapshot: dict[str, Any] = {
            "customer": client_snapshot(customer),
            "pets": [patient_snapshot(p) for p in pets],
            "created_patients": [],
        }
        before = {"pims_id": ""}
        self.merged_customers.add(customer.pk)
        customer.pims_id = pims.pims_id
        customer.pims_seen = client_seen(pims)
        customer.pims_modified_at = pims.modified_at
        # The customer's own contact details stay; the PIMS fills only what is empty.
        if not customer.email and pims.email:
            customer.email = pims.email
        if not customer.phone and pims.phone:
            customer.phone = pims.phone
            customer.phone_normalized = normalize_phone(pims.phone, self.region)
        if not customer.address_line1 and not pims.address.is_empty():
            for key, attr in ADDRESS_TO_CLIENT.items():
                setattr(customer, attr, getattr(pims.address, key) or getattr(customer, attr))
        customer.updated_at = chunk.now
        chunk.changed_clients[customer.pk] = customer
        chunk.merges.append(
            {
                "clinic_id": self.clinic.pk,
                "customer_id": customer.pk,
                "pims_id": pims.pims_id,
                "method": ClientMerge.Method.RULE,
                "rule": match.rule,
                "run_id": self.run.pk,
                "snapshot": snapshot,
                "created_at": chunk.now,
            }
        )
        self._audit(
            chunk,
            "sync.client_merged",
            customer,
            before,
            {"pims_id": pims.pims_id, "rule": match.rule},
        )
        self._outcome(
            chunk,
            "client",
            pims.pims_id,
            Outcome.MERGED,
            client=customer,
            detail=f"Merged into customer {customer.customer_ref} ({customer.full_name}): "
            f"{match.rule}.",
        )
        by_name = {normalize_text(p.name): p for p in pets}
        for patient in pims.patients:
            known = patient.pims_id in existing_patients
            pet = None if known else by_name.pop(normalize_text(patient.name), None)
            if pet is None:
                if not known:
                    snapshot["created_patients"].append(patient.pims_id)
                self._patient_for(chunk, customer, patient, existing_patients)
                continue
            pet.pims_id = patient.pims_id
            pet.pims_seen = patient_seen(patient)
            pet.pims_modified_at = patient.modified_at
            for attr in ("species", "breed", "sex", "microchip"):
                if not getattr(pet, attr):
                    setattr(pet, attr, getattr(patient, attr))
            if pet.birth_date is None:
                pet.birth_date = patient.birth_date
            self._apply_weight(chunk, pet, patient)
            self._apply_deceased(chunk, pet, patient)
            pet.updated_at = chunk.now
            chunk.changed_patients[pet.pk] = pet
            self._outcome(
                chunk,
                "patient",
                patient.pims_id,
                Outcome.MERGED,
                client=customer,
                patient=pet,
                detail=f"Linked to the customer's pet {pet.name}.",
            )

    # --- changes to known records ----------------------------------------------------------

    def _is_stale(self, known: dt.datetime | None, incoming: dt.datetime | None) -> bool:
        return known is not None and incoming is not None and incoming < known

    def _update_client(
        self,
        chunk: _Chunk,
        client: Client,
        pims: PimsClient,
        existing_patients: dict[str, Patient],
    ) -> None:
        if self._is_stale(client.pims_modified_at, pims.modified_at):
            self._outcome(
                chunk,
                "client",
                pims.pims_id,
                Outcome.UNCHANGED,
                client=client,
                detail="Older than the PIMS values already applied; ignored.",
            )
        else:
            self._client_policy(chunk, client, pims)
        for patient in pims.patients:
            self._patient_for(chunk, client, patient, existing_patients)

    def _client_policy(self, chunk: _Chunk, client: Client, pims: PimsClient) -> None:
        old = client.pims_seen or {}
        new = client_seen(pims)
        applied: dict[str, tuple[Any, Any]] = {}
        held: list[str] = []
        differs: list[str] = []
        # An email removed in the PIMS is not applied: the pharmacy still needs one to write to.
        if old.get("email") != new["email"] and new["email"] and client.email != new["email"]:
            applied["email"] = (client.email, new["email"])
            client.email = new["email"]
        if _changed(old, new, ("first_name", "last_name")):
            self._hold(
                chunk,
                ManualUpdate.Kind.CLIENT_NAME,
                client,
                None,
                current={"first_name": client.first_name, "last_name": client.last_name},
                proposed={"first_name": new["first_name"], "last_name": new["last_name"]},
            )
            held.append("name")
        if _changed(old, new, CLIENT_ADDRESS_FIELDS):
            self._hold(
                chunk,
                ManualUpdate.Kind.CLIENT_ADDRESS,
                client,
                None,
                current={key: getattr(client, attr) for key, attr in ADDRESS_TO_CLIENT.items()},
                # No country from the PIMS means "the clinic's", not "none".
                proposed={
                    **{key: new[key] for key in CLIENT_ADDRESS_FIELDS},
                    "country": new["country"] or client.country,
                },
            )
            held.append("address")
        for key in ("phone", "active"):
            if old.get(key) != new[key]:
                differs.append(key)
        self._record_change(
            chunk, client, client, pims.pims_id, pims.modified_at, old, new, applied, held, differs
        )

    def _update_patient(
        self, chunk: _Chunk, client: Client, patient: Patient, pims: PimsPatient
    ) -> None:
        if self._is_stale(patient.pims_modified_at, pims.modified_at):
            self._outcome(
                chunk,
                "patient",
                pims.pims_id,
                Outcome.UNCHANGED,
                client=client,
                patient=patient,
                detail="Older than the PIMS values already applied; ignored.",
            )
            return
        old = patient.pims_seen or {}
        new = patient_seen(pims)
        before = {
            "weight": str(patient.weight) if patient.weight is not None else None,
            "weight_unit": patient.weight_unit,
            "is_deceased": patient.is_deceased,
            "deceased_on": patient.deceased_on,
        }
        applied: dict[str, tuple[Any, Any]] = {}
        held: list[str] = []
        if _changed(old, new, ("weight", "weight_unit")) and self._apply_weight(
            chunk, patient, pims
        ):
            applied["weight"] = (before["weight"], new["weight"])
        if _changed(old, new, ("deceased", "deceased_on")) and self._apply_deceased(
            chunk, patient, pims
        ):
            applied["deceased"] = (before["is_deceased"], pims.deceased)
        if old.get("name") != new["name"]:
            self._hold(
                chunk,
                ManualUpdate.Kind.PET_NAME,
                client,
                patient,
                current={"name": patient.name},
                proposed={"name": new["name"]},
            )
            held.append("name")
        differs = [
            key
            for key in ("species", "breed", "sex", "birth_date", "microchip", "active")
            if old.get(key) != new[key]
        ]
        self._record_change(
            chunk, patient, client, pims.pims_id, pims.modified_at, old, new, applied, held, differs
        )

    def _record_change(
        self,
        chunk: _Chunk,
        record: Client | Patient,
        client: Client,
        pims_id: str,
        modified_at: dt.datetime | None,
        old: dict[str, Any],
        new: dict[str, Any],
        applied: dict[str, tuple[Any, Any]],
        held: list[str],
        differs: list[str],
    ) -> None:
        """Keep the PIMS's new values, audit what was applied, and say what happened."""
        kind = "patient" if isinstance(record, Patient) else "client"
        patient = record if isinstance(record, Patient) else None
        if old == new and record.pims_modified_at == modified_at:
            self._outcome(chunk, kind, pims_id, Outcome.UNCHANGED, client=client, patient=patient)
            return
        record.pims_seen = new
        record.pims_modified_at = modified_at
        record.updated_at = chunk.now
        if patient is not None:
            chunk.changed_patients[patient.pk] = patient
        else:
            chunk.changed_clients[client.pk] = client
        if applied:
            self._audit(
                chunk,
                f"sync.{kind}_updated",
                record,
                {k: v[0] for k, v in applied.items()},
                {k: v[1] for k, v in applied.items()},
            )
        self._outcome(
            chunk,
            kind,
            pims_id,
            Outcome.MANUAL_UPDATE if held else Outcome.UPDATED if applied else Outcome.UNCHANGED,
            client=client,
            patient=patient,
            detail=_describe(applied, held, differs),
        )

    def _apply_weight(self, chunk: _Chunk, patient: Patient, pims: PimsPatient) -> bool:
        if pims.weight is None:
            return False
        if patient.weight == pims.weight and patient.weight_unit == pims.weight_unit.value:
            return False
        patient.weight = pims.weight
        patient.weight_unit = pims.weight_unit.value
        chunk.weights.append(self._weighing(chunk, patient, pims))
        return True

    def _apply_deceased(self, chunk: _Chunk, patient: Patient, pims: PimsPatient) -> bool:
        deceased_on = pims.deceased_on if pims.deceased else None
        if patient.is_deceased == pims.deceased and patient.deceased_on == deceased_on:
            return False
        newly = pims.deceased and not patient.is_deceased
        patient.is_deceased = pims.deceased
        patient.deceased_on = deceased_on
        if newly:
            chunk.deceased.append(patient)
        return True

    def _hold(
        self,
        chunk: _Chunk,
        kind: str,
        client: Client,
        patient: Patient | None,
        *,
        current: dict[str, Any],
        proposed: dict[str, Any],
    ) -> None:
        if current == proposed:
            # The pharmacy already has the PIMS's value: nothing to confirm any more.
            chunk.settled.append((client, patient, kind))
        else:
            chunk.held.append(_Held(kind, client, patient, current, proposed))

    # --- writing ---------------------------------------------------------------------------

    def _flush(self, chunk: _Chunk) -> None:
        for inserter in chunk.inserts:
            _insert(inserter)
        bulk_update_rows(Client, chunk.changed_clients.values(), CLIENT_UPDATE_FIELDS)
        bulk_update_rows(Patient, chunk.changed_patients.values(), PATIENT_UPDATE_FIELDS)
        self._flush_manual_updates(chunk)
        ManualUpdate.objects.bulk_create(
            [
                ManualUpdate(
                    clinic=self.clinic,
                    kind=ManualUpdate.Kind.POSSIBLE_MATCH,
                    client=customer,
                    candidate_id=candidate.pk,
                    detail=match.rule,
                    proposed={"rule": match.rule, "score": round(match.score)},
                    run=self.run,
                    created_at=chunk.now,
                    updated_at=chunk.now,
                )
                for customer, candidate, match in chunk.matches
            ]
        )
        if chunk.merges:
            # A customer merged by rule is nobody's possible match any more.
            ManualUpdate.objects.filter(
                client_id__in=[m["customer_id"] for m in chunk.merges],
                kind=ManualUpdate.Kind.POSSIBLE_MATCH,
                status=ManualUpdate.Status.PENDING,
            ).update(
                status=ManualUpdate.Status.SUPERSEDED,
                resolved_at=chunk.now,
                resolution_note="Merged automatically with another PIMS client.",
            )
        hooks.patients_became_deceased(chunk.deceased)

    def _flush_manual_updates(self, chunk: _Chunk) -> None:
        if not chunk.held and not chunk.settled:
            return
        client_ids = {h.client.pk for h in chunk.held} | {c.pk for c, _, _ in chunk.settled}
        pending: dict[tuple[int, int | None, str], ManualUpdate] = {
            (mu.client_id, mu.patient_id, mu.kind): mu
            for mu in ManualUpdate.objects.select_for_update()
            .filter(
                clinic=self.clinic,
                client_id__in=client_ids,
                status=ManualUpdate.Status.PENDING,
                candidate__isnull=True,
            )
            .order_by("pk")
        }
        for client, patient, kind in chunk.settled:
            found = pending.pop((client.pk, patient.pk if patient else None, kind), None)
            if found is not None:
                found.status = ManualUpdate.Status.SUPERSEDED
                found.resolved_at = chunk.now
                found.resolution_note = "The PIMS now matches the pharmacy's value."
                found.save(update_fields=["status", "resolved_at", "resolution_note"])
        creates = []
        for held in chunk.held:
            key = (held.client.pk, held.patient.pk if held.patient else None, held.kind)
            found = pending.get(key)
            if found is not None:
                found.proposed = held.proposed
                found.current = held.current
                found.run = self.run
                found.updated_at = chunk.now
                found.save(update_fields=["proposed", "current", "run", "updated_at"])
                continue
            creates.append(
                ManualUpdate(
                    clinic=self.clinic,
                    kind=held.kind,
                    client=held.client,
                    patient=held.patient,
                    current=held.current,
                    proposed=held.proposed,
                    run=self.run,
                    created_at=chunk.now,
                    updated_at=chunk.now,
                )
            )
        ManualUpdate.objects.bulk_create(creates, batch_size=500)


def _insert(inserter: RowInserter) -> None:
    # One name for the tests to intercept (a crash between two inserts of a chunk).
    inserter.flush()


def _describe(applied: dict[str, Any], held: list[str], differs: list[str]) -> str:
    parts = []
    if applied:
        parts.append("applied: " + ", ".join(sorted(applied)))
    if held:
        parts.append("held for review: " + ", ".join(held))
    if differs:
        parts.append("PIMS differs (not applied): " + ", ".join(differs))
    return "; ".join(parts)


def client_snapshot(client: Client) -> dict[str, Any]:
    """Every stored field of a client, to restore it exactly (unmerge)."""
    return {
        f.attname: getattr(client, f.attname)
        for f in Client._meta.concrete_fields
        if f.attname not in {"created_at", "updated_at"}
    }


def patient_snapshot(patient: Patient) -> dict[str, Any]:
    return {
        f.attname: getattr(patient, f.attname)
        for f in Patient._meta.concrete_fields
        if f.attname not in {"created_at", "updated_at"}
    }
