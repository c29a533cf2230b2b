"""WriteBack: the outbox rows written with each change, and their delivery to the PIMS.

Writing (``writeback_*_enqueue``) happens inside the caller's transaction, so the row and the
change that caused it commit or roll back together; the Celery task is published on commit.
Delivery claims a row with a conditional update, talks to the PIMS outside any transaction,
and records the outcome. Never sent twice: a POST retried after an ambiguous failure first
looks its ``external_reference`` up, and a PATCH retried first reads the prescription back to
see whether it was already applied. Rows of one prescription go in ``sequence`` order.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, Max, Min, OuterRef, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from clinics.audit import audit_log
from clinics.models import Clinic, Connector
from clinics.services import CredentialsError, ezyvet_client, render_email
from prescriptions.models import (
    ItemStatus,
    Order,
    OrderLine,
    Prescription,
    PrescriptionItem,
    WritebackAttempt,
    WritebackIncident,
    WritebackItem,
)
from prescriptions.rules import writeback_eligibility
from vetsync.pims import ezyvet

log = logging.getLogger(__name__)

Target = WritebackItem.Target
Kind = WritebackItem.Kind
Status = WritebackItem.Status
# How long a new row is left to the message its commit sent before the sweep sends another.
SWEEP_GRACE = dt.timedelta(seconds=60)
# Rows that hold back later rows of the same prescription (a failed one until it is retried).
BLOCKING = (Status.PENDING, Status.SENDING, Status.FAILED)


def _blocked() -> Exists:
    """For a row in a queryset: an earlier row of its prescription is not through yet."""
    return Exists(
        WritebackItem.objects.filter(
            prescription_id=OuterRef("prescription_id"),
            sequence__lt=OuterRef("sequence"),
            status__in=BLOCKING,
        )
    )


# --- what is written back, and where ---------------------------------------------------------


def writeback_target(clinic: Clinic) -> str | None:
    """ezyVet's API, an agent's feed, or nothing (WriteBack off, no integration)."""
    if not clinic.writeback_enabled:
        return None
    integration = getattr(clinic, "integration", None)
    if integration is None:
        return None
    return Target.EZYVET if integration.connector == Connector.EZYVET else Target.AGENT


def eligible_items(prescription: Prescription) -> list[PrescriptionItem]:
    return [
        item
        for item in prescription.items.select_related("product")
        if writeback_eligibility(
            clinic=prescription.clinic,
            product=item.product,
            channel=prescription.channel,
            prescribed=True,
        ).eligible
    ]


def _epoch(value: dt.datetime | dt.date) -> int:
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(12, 0), tzinfo=dt.UTC)
    return int(value.timestamp())


def prescription_link(prescription: Prescription) -> str:
    return settings.SITE_URL.rstrip("/") + prescription.get_absolute_url()


def _identity(prescription: Prescription) -> dict[str, Any]:
    """Who and what the PIMS files it under; refreshed when a failed row is retried."""
    patient = prescription.patient
    payload: dict[str, Any] = {
        "animal_id": patient.pims_id,
        "contact_id": patient.client.pims_id,
        "prescribing_vet_user_id": prescription.vet.pims_user_id,
    }
    if prescription.consult_ref:
        payload["consult_id"] = prescription.consult_ref
    return payload


def _prescribe_payload(prescription: Prescription, items: Sequence[PrescriptionItem]) -> dict:
    assert prescription.approved_at is not None
    link = prescription_link(prescription)
    lines = [
        {
            "external_product_name": item.product.name,
            "external_product_reference": item.product.sku,
            "external_link": link,
            "instructions": item.instructions,
            "price": str(item.product.price * item.quantity),
            "qty": item.quantity,
            "remaining": item.total_quantity,
        }
        for item in items
    ]
    return {
        **_identity(prescription),
        "date_of_prescription": _epoch(prescription.approved_at),
        "external_reference": prescription.external_reference,
        "total_price": str(sum(item.product.price * item.quantity for item in items)),
        "external_prescription_item_list": lines,
    }


def _agent_line(
    prescription: Prescription, item: PrescriptionItem, *, kind: str, order: Order | None = None
) -> dict[str, Any]:
    patient = prescription.patient
    return {
        "kind": kind,
        "client_pims_id": patient.client.pims_id,
        "patient_pims_id": patient.pims_id,
        "product_name": item.product.name,
        "product_reference": item.product.sku,
        "instructions": item.instructions,
        "prescriber": str(prescription.vet),
        "prescriber_pims_id": prescription.vet.pims_user_id,
        "prescription_ref": prescription.number,
        "order_ref": order.number if order is not None else "",
        "link": prescription_link(prescription),
    }


def _next_sequence(prescription: Prescription) -> int:
    last = WritebackItem.objects.filter(prescription=prescription).aggregate(m=Max("sequence"))
    return (last["m"] or 0) + 1


def _add(
    *,
    prescription: Prescription,
    kind: str,
    target: str,
    key: str,
    payload: dict[str, Any],
    order: Order | None = None,
) -> WritebackItem | None:
    """One outbox row, once per key; the delivery task is published when the caller commits."""
    if WritebackItem.objects.filter(key=key).exists():
        return None
    # Two shipments of one prescription at once must not share a sequence number.
    Prescription.objects.select_for_update().filter(pk=prescription.pk).exists()
    row = WritebackItem.objects.create(
        clinic=prescription.clinic,
        prescription=prescription,
        order=order,
        kind=kind,
        target=target,
        sequence=_next_sequence(prescription),
        key=key,
        payload=payload,
    )
    if target == Target.EZYVET:
        _deliver_on_commit(row.pk)
    return row


def _deliver_on_commit(item_id: int) -> None:
    from prescriptions.tasks import writeback_deliver  # tasks import this module

    writeback_deliver.delay_on_commit(item_id)


def was_prescribed_to_pims(prescription: Prescription) -> bool:
    """Whether the prescription itself went (or is going) to the PIMS, so changes follow it."""
    return WritebackItem.objects.filter(
        prescription=prescription, kind=Kind.PRESCRIBE, retry_of__isnull=True
    ).exists()


def writeback_prescribe_enqueue(*, prescription: Prescription) -> WritebackItem | None:
    """Approved (and, for a request, paid): POST it to ezyVet with its eligible items.

    Agent-based PIMS take only dispenses and ends (their feed has no prescription kind)."""
    target = writeback_target(prescription.clinic)
    if target != Target.EZYVET or not prescription.is_sendable:
        return None
    items = eligible_items(prescription)
    if not items:
        return None
    return _add(
        prescription=prescription,
        kind=Kind.PRESCRIBE,
        target=target,
        key=f"rx:{prescription.pk}:prescribe",
        payload=_prescribe_payload(prescription, items),
    )


def writeback_dispense_enqueue(
    *, order: Order, lines: Iterable[OrderLine], dispensed_at: dt.datetime
) -> list[WritebackItem]:
    """A shipment: one PATCH per prescription (ezyVet), or one feed line per item (agent).

    ``dispensed_at`` is to the second, so that two shipments of one item on the same day
    differ: a retried PATCH is recognised as applied by its exact dispense time."""
    target = writeback_target(order.clinic)
    if target is None:
        return []
    shipped_at = _epoch(dispensed_at)
    by_rx: dict[int, list[OrderLine]] = {}
    for line in lines:
        item = line.prescription_item
        if item is None:
            continue  # an OTC product outside a treatment plan: never written back
        rx = item.prescription
        if (
            not rx.is_sendable
            or not writeback_eligibility(
                clinic=order.clinic, product=line.product, channel=order.channel, prescribed=True
            ).eligible
        ):
            continue
        by_rx.setdefault(rx.pk, []).append(line)
    rows = []
    for rx_lines in by_rx.values():
        rx = rx_lines[0].prescription_item.prescription  # type: ignore[union-attr]
        if target == Target.EZYVET:
            if not was_prescribed_to_pims(rx):
                continue
            payload: dict[str, Any] = {
                "external_prescription_item_list": [
                    {
                        "external_product_reference": line.product.sku,
                        "date_of_lastdispense": shipped_at,
                        "qty": line.quantity,
                        "remaining": line.prescription_item.remaining,  # type: ignore[union-attr]
                    }
                    for line in rx_lines
                ]
            }
            row = _add(
                prescription=rx,
                kind=Kind.DISPENSE,
                target=target,
                key=f"rx:{rx.pk}:order:{order.pk}:dispense",
                payload=payload,
                order=order,
            )
            rows.append(row)
            continue
        for line in rx_lines:
            item = line.prescription_item
            assert item is not None
            payload = {
                **_agent_line(rx, item, kind="dispense", order=order),
                "qty": line.quantity,
                "remaining": item.remaining,
                "shipped_at": dispensed_at.isoformat(),
            }
            rows.append(
                _add(
                    prescription=rx,
                    kind=Kind.DISPENSE,
                    target=target,
                    key=f"rx:{rx.pk}:order:{order.pk}:line:{line.pk}:dispense",
                    payload=payload,
                    order=order,
                )
            )
    return [row for row in rows if row is not None]


def writeback_end_enqueue(
    *, prescription: Prescription, items: Sequence[PrescriptionItem]
) -> list[WritebackItem]:
    """Items ended (declined or cancelled): a PATCH with status and status_date, or feed lines."""
    target = writeback_target(prescription.clinic)
    if target is None or not prescription.is_sendable:
        return []
    eligible = {item.pk for item in eligible_items(prescription)}
    ended = [item for item in items if item.pk in eligible]
    if not ended:
        return []
    dispensed = _dispensed_in_pims(prescription, target)
    if target == Target.EZYVET:
        if not was_prescribed_to_pims(prescription):
            return []
        payload: dict[str, Any] = {
            "external_prescription_item_list": [
                {
                    "external_product_reference": item.product.sku,
                    "status": _end_as_seen(item, dispensed),
                    "status_date": _epoch(item.status_date),
                }
                for item in ended
            ]
        }
        keys = "-".join(str(item.pk) for item in ended)
        row = _add(
            prescription=prescription,
            kind=Kind.STATUS,
            target=target,
            key=f"rx:{prescription.pk}:end:{keys}",
            payload=payload,
        )
        return [row] if row is not None else []
    rows = []
    for item in ended:
        if item.product.sku not in dispensed:
            # An agent PIMS only hears of items through their dispense lines: nothing to end.
            continue
        payload = {
            **_agent_line(prescription, item, kind="status"),
            "qty": item.dispensed_quantity,
            "status": item.status,
            "status_date": item.status_date.isoformat(),
        }
        row = _add(
            prescription=prescription,
            kind=Kind.STATUS,
            target=target,
            key=f"rx:{prescription.pk}:item:{item.pk}:end",
            payload=payload,
        )
        if row is not None:
            rows.append(row)
    return rows


def _dispensed_in_pims(prescription: Prescription, target: str) -> set[str]:
    """The product references the PIMS was told were dispensed (a dispense through eConnect
    is not written back, so the PIMS may still hold such an item as never dispensed)."""
    rows = (
        WritebackItem.objects.filter(prescription=prescription, kind=Kind.DISPENSE, target=target)
        .exclude(status__in=(Status.RETRIED, Status.DISMISSED))
        .values_list("payload", flat=True)
    )
    seen: set[str] = set()
    for payload in rows:
        if target == Target.AGENT:
            seen.add(str(payload.get("product_reference", "")))
        else:
            seen.update(
                str(line.get("external_product_reference", ""))
                for line in payload.get("external_prescription_item_list", [])
            )
    return seen


_AS_DECLINE = {
    ItemStatus.CANCELLED_DR: ItemStatus.DECLINED_DR,
    ItemStatus.CANCELLED_CLIENT: ItemStatus.DECLINED_CLIENT,
}


def _end_as_seen(item: PrescriptionItem, dispensed: set[str]) -> str:
    """The end the PIMS accepts: an item it never saw dispensed is declined, not cancelled."""
    if item.product.sku in dispensed:
        return item.status
    return _AS_DECLINE.get(ItemStatus(item.status), item.status)


# --- delivery to ezyVet ----------------------------------------------------------------------


@dataclass
class Delivery:
    """What one delivery call did, for the task's log and the tests."""

    item_id: int
    outcome: str
    error: str = ""


ClientFactory = Callable[[Clinic], ezyvet.EzyVetClient]
_clients: dict[tuple[int, str], ezyvet.EzyVetClient] = {}


def _worker_client(clinic: Clinic) -> ezyvet.EzyVetClient:
    """One connector per clinic per worker process, so the token is reused. It tries each
    call once: retries are the outbox's (a 429 comes back at once with its Retry-After, a 5xx
    or a timeout as an error), so one delivery stays well inside the row's lease."""
    integration = clinic.integration
    stamp = str(integration.credentials_updated_at) + integration.base_url
    cached = _clients.get((clinic.pk, stamp))
    if cached is None:
        cached = ezyvet_client(
            integration,
            max_attempts=1,
            max_rate_limited=0,
            backoff_base=0.2,
            backoff_cap=1.0,
            timeout=(5.0, 20.0),
        )
        _clients[(clinic.pk, stamp)] = cached
    return cached


def _is_blocked(item: WritebackItem) -> bool:
    return WritebackItem.objects.filter(pk=item.pk).filter(_blocked()).exists()


def _claim(item_id: int, now: dt.datetime) -> tuple[WritebackItem, WritebackAttempt] | None:
    """Take the row for this worker: only one worker sends it, and a crashed worker's lease
    runs out so the sweep can hand it to another. The task's time limit is shorter than the
    lease, so a slow worker is stopped before another may take its row."""
    due = Q(status=Status.PENDING, next_attempt_at__lte=now) | Q(
        status=Status.SENDING, claimed_until__lt=now
    )
    claimed = (
        WritebackItem.objects.filter(due, pk=item_id, target=Target.EZYVET).update(
            status=Status.SENDING,
            claimed_until=now + settings.WRITEBACK_LEASE,
            attempts=F("attempts") + 1,
        )
        == 1
    )
    if not claimed:
        return None
    item = WritebackItem.objects.select_related(
        "clinic__integration", "prescription__patient__client", "prescription__vet"
    ).get(pk=item_id)
    # An attempt still "sending" belonged to a worker that stopped: its write may have landed.
    WritebackAttempt.objects.filter(item=item, outcome=WritebackAttempt.Outcome.SENDING).update(
        outcome=WritebackAttempt.Outcome.RETRY,
        finished_at=now,
        error="The worker stopped before the answer was recorded.",
    )
    number = WritebackAttempt.objects.filter(item=item).count() + 1
    return item, WritebackAttempt.objects.create(item=item, number=number, started_at=now)


def _backoff(attempts: int, rng: random.Random) -> float:
    base = settings.WRITEBACK_BACKOFF_BASE * (2 ** max(attempts - 1, 0))
    return min(base, settings.WRITEBACK_BACKOFF_MAX) * rng.uniform(0.5, 1.5)


def _missing_identity(item: WritebackItem) -> str:
    if item.kind != Kind.PRESCRIBE:
        return ""
    payload = item.payload
    missing = []
    if not payload.get("animal_id"):
        missing.append(f"the pet {item.prescription.patient.name} has no PIMS id")
    if not payload.get("contact_id"):
        missing.append("its owner has no PIMS id")
    if not payload.get("prescribing_vet_user_id"):
        missing.append(f"{item.prescription.vet} has no ezyVet user id")
    if not missing:
        return ""
    return (
        "Not sent: "
        + "; ".join(missing)
        + ". Link the records (the next sync, or the vet's PIMS user id), then retry."
    )


def _send(
    item: WritebackItem, attempt: WritebackAttempt, client: ezyvet.EzyVetClient
) -> tuple[str, dict[str, Any]]:
    """Talk to ezyVet; returns the attempt's outcome and ezyVet's record.

    An earlier attempt that may have reached ezyVet (any but a write refused with a 429; a
    lookup throttled after a lost answer counts) means it may have the change: look first."""
    again = (
        item.retry_of_id is not None
        or WritebackAttempt.objects.filter(item=item, may_have_applied=True)
        .exclude(pk=attempt.pk)
        .exists()
    )
    if item.kind == Kind.PRESCRIBE:
        record = item.prescription.pims_id and client.externalprescription_get(
            item.prescription.pims_id
        )
        if record:
            return WritebackAttempt.Outcome.ALREADY_APPLIED, record
        record = client.externalprescription_create(item.payload, look_first=again)
        return WritebackAttempt.Outcome.DELIVERED, record
    pims_id = item.prescription.pims_id
    if not pims_id:
        found = client.externalprescription_find(item.prescription.external_reference)
        if found is None:
            raise ezyvet.EzyVetRequestError(
                f"ezyVet has no prescription {item.prescription.external_reference} to update."
            )
        pims_id = str(found.get("id", ""))
        Prescription.objects.filter(pk=item.prescription_id).update(pims_id=pims_id)
    if again:
        current = client.externalprescription_get(pims_id)
        if current is not None and ezyvet.patch_applied(current, item.payload):
            return WritebackAttempt.Outcome.ALREADY_APPLIED, current
    try:
        record = client.externalprescription_update(pims_id, item.payload)
    except ezyvet.EzyVetRequestError:
        # Refused ("only pending items can be declined"): if ezyVet already shows the change,
        # an earlier attempt made it and the answer was lost; otherwise the refusal stands.
        current = client.externalprescription_get(pims_id)
        if current is not None and ezyvet.patch_applied(current, item.payload):
            return WritebackAttempt.Outcome.ALREADY_APPLIED, current
        raise
    return WritebackAttempt.Outcome.DELIVERED, record


def writeback_deliver(
    *,
    item_id: int,
    client_factory: ClientFactory = _worker_client,
    rng: random.Random | None = None,
) -> Delivery | None:
    """Send one due outbox row to ezyVet; safe to call twice (the claim decides who sends)."""
    now = timezone.now()
    candidate = WritebackItem.objects.filter(pk=item_id).only("prescription_id", "sequence").first()
    if candidate is None or _is_blocked(candidate):
        return None
    claim = _claim(item_id, now)
    if claim is None:
        return None
    item, attempt = claim
    rng = rng or random.Random()
    if item.attempts > settings.WRITEBACK_MAX_ATTEMPTS:
        # Every earlier attempt ended with its worker gone (killed, or over its time limit).
        return _failed(
            item,
            attempt,
            RuntimeError("the worker stopped during every attempt"),
            retry_in=0,
            permanent=True,
        )
    missing = _missing_identity(item)
    try:
        if missing:
            raise ezyvet.EzyVetRequestError(missing)
        client = client_factory(item.clinic)
        outcome, record = _send(item, attempt, client)
    except ezyvet.EzyVetRateLimited as exc:
        if not ezyvet.write_may_have_landed(exc):
            # Refused before anything was applied: not a failure of this row, so it does not
            # count towards giving up, and the next try need not look before writing.
            WritebackAttempt.objects.filter(pk=attempt.pk).update(may_have_applied=False)
            WritebackItem.objects.filter(pk=item.pk, status=Status.SENDING).update(
                attempts=F("attempts") - 1
            )
            item.attempts -= 1
        return _failed(
            item, attempt, exc, retry_in=exc.retry_after + rng.uniform(0, 1), permanent=False
        )
    except ezyvet.EzyVetRequestError as exc:
        return _failed(item, attempt, exc, retry_in=0, permanent=True)
    except Exception as exc:
        if not isinstance(exc, ezyvet.EzyVetError | CredentialsError | requests.RequestException):
            log.exception("writeback %s failed unexpectedly", item.pk)
        return _failed(item, attempt, exc, retry_in=_backoff(item.attempts, rng), permanent=False)
    return _delivered(item, attempt, outcome, record)


def _still_ours(item: WritebackItem) -> QuerySet[WritebackItem]:
    """The row, if this worker's claim still holds (no other worker has taken it since)."""
    return WritebackItem.objects.filter(pk=item.pk, status=Status.SENDING, attempts=item.attempts)


def _delivered(
    item: WritebackItem, attempt: WritebackAttempt, outcome: str, record: dict[str, Any]
) -> Delivery:
    now = timezone.now()
    with transaction.atomic():
        WritebackAttempt.objects.filter(pk=attempt.pk).update(
            outcome=outcome, finished_at=now, http_status=200
        )
        if item.kind == Kind.PRESCRIBE and record.get("id"):
            Prescription.objects.filter(pk=item.prescription_id).update(pims_id=str(record["id"]))
        if not _still_ours(item).update(
            status=Status.DELIVERED,
            delivered_at=now,
            claimed_until=None,
            last_error="",
            response=record,
        ):
            return Delivery(item.pk, "superseded")
        _incident_close(item.clinic)
        _deliver_next_on_commit(item)
    return Delivery(item.pk, outcome)


def _deliver_next_on_commit(item: WritebackItem) -> None:
    """Once this row's outcome is committed, send the next row of its prescription. Looked up
    after the commit: a row written meanwhile whose own message found this one still
    sending is then seen here, instead of waiting for the sweep."""

    def send_next() -> None:
        from prescriptions.tasks import writeback_deliver  # tasks import this module

        for successor in _due_successors(item):
            writeback_deliver.delay(successor)

    transaction.on_commit(send_next)


def _due_successors(item: WritebackItem) -> list[int]:
    """The next row of the prescription, now free to go."""
    nxt = (
        WritebackItem.objects.filter(
            prescription_id=item.prescription_id,
            status=Status.PENDING,
            target=Target.EZYVET,
            sequence__gt=item.sequence,
        )
        .order_by("sequence", "pk")
        .values_list("pk", flat=True)
        .first()
    )
    return [nxt] if nxt else []


def _failed(
    item: WritebackItem,
    attempt: WritebackAttempt,
    exc: BaseException,
    *,
    retry_in: float,
    permanent: bool,
) -> Delivery:
    now = timezone.now()
    message = str(exc) or exc.__class__.__name__
    status_code = getattr(exc, "status", None)
    dead = permanent or item.attempts >= settings.WRITEBACK_MAX_ATTEMPTS
    if dead and not permanent:
        message = f"Gave up after {item.attempts} attempts. Last error: {message}"
    with transaction.atomic():
        WritebackAttempt.objects.filter(pk=attempt.pk).update(
            outcome=WritebackAttempt.Outcome.FAILED if dead else WritebackAttempt.Outcome.RETRY,
            finished_at=now,
            http_status=status_code,
            error=message[:2000],
        )
        if not _still_ours(item).update(
            status=Status.FAILED if dead else Status.PENDING,
            next_attempt_at=now + dt.timedelta(seconds=retry_in),
            claimed_until=None,
            last_error=message[:2000],
        ):
            return Delivery(item.pk, "superseded", message)
        if dead:
            _incident_open(item.clinic, message)
    log.warning("writeback %s attempt %s failed: %s", item.pk, item.attempts, message)
    return Delivery(
        item.pk,
        WritebackAttempt.Outcome.FAILED if dead else WritebackAttempt.Outcome.RETRY,
        message,
    )


def writeback_due(*, now: dt.datetime | None = None, limit: int = 500) -> list[int]:
    """ezyVet rows to deliver now: due and pending, or abandoned mid-send; heads of their
    prescription only (a later row waits for the earlier one, and never crowds out others)."""
    now = now or timezone.now()
    rows = (
        WritebackItem.objects.filter(
            Q(status=Status.PENDING, next_attempt_at__lte=now)
            | Q(status=Status.SENDING, claimed_until__lt=now),
            target=Target.EZYVET,
        )
        .exclude(_blocked())
        # A row never tried and just written has its own message on the way (sent on commit):
        # the sweep is for the message that was lost, not a second one in the queue.
        .exclude(
            ~Exists(WritebackAttempt.objects.filter(item=OuterRef("pk"))),
            created_at__gt=now - SWEEP_GRACE,
        )
        .order_by("next_attempt_at", "pk")
        .values_list("pk", "prescription_id")[:limit]
    )
    heads: dict[int, int] = {}
    for pk, rx in rows:
        heads.setdefault(rx, pk)
    return list(heads.values())


# --- the agent feed --------------------------------------------------------------------------

FEED_PAGE = 200


class AckError(ValueError):
    """An acknowledgement that cannot be taken (unknown item, bad body)."""


def agent_feed(
    *, clinic: Clinic, after: int = 0, limit: int = FEED_PAGE
) -> tuple[list[dict[str, Any]], int]:
    """The clinic's pending line items after the cursor, oldest first, in the feed's format,
    and the cursor for the next call. A line waiting for an earlier line of its prescription
    (a failed dispense being retried) is held back, and the cursor stays before it."""
    pending = WritebackItem.objects.filter(
        clinic=clinic, target=Target.AGENT, status=Status.PENDING, pk__gt=after
    )
    # Lines are listed by id, which is their order except for a retry (a new id for an early
    # line): a line waits while an earlier line of its prescription failed, or is a retry
    # that comes later in the list.
    earlier = WritebackItem.objects.filter(
        prescription_id=OuterRef("prescription_id"), sequence__lt=OuterRef("sequence")
    )
    waiting = Exists(earlier.filter(status=Status.FAILED)) | Exists(
        earlier.filter(status=Status.PENDING, pk__gt=OuterRef("pk"))
    )
    rows = list(pending.exclude(waiting).order_by("pk").values("pk", "payload")[:limit])
    items = [{"id": row["pk"], **row["payload"]} for row in rows]
    cursor = items[-1]["id"] if items else after
    held = pending.filter(waiting, pk__lte=cursor).order_by("pk").values_list("pk", flat=True)
    first_held = held.first()
    if first_held is not None:
        cursor = first_held - 1
    return items, cursor


def agent_ack(*, clinic: Clinic, item_id: int, ok: bool, error: str = "") -> WritebackItem:
    """The agent wrote (or could not write) a line item; a repeated ack changes nothing."""
    now = timezone.now()
    with transaction.atomic():
        item = (
            WritebackItem.objects.select_for_update()
            .filter(clinic=clinic, target=Target.AGENT, pk=item_id)
            .first()
        )
        if item is None:
            raise AckError(f"No writeback item {item_id} for this clinic.")
        if item.status != Status.PENDING:
            return item
        item.attempts += 1
        WritebackAttempt.objects.create(
            item=item,
            number=item.attempts,
            started_at=now,
            finished_at=now,
            outcome=WritebackAttempt.Outcome.DELIVERED if ok else WritebackAttempt.Outcome.FAILED,
            error="" if ok else (error or "The agent reported a failure.")[:2000],
        )
        if ok:
            item.status = Status.DELIVERED
            item.delivered_at = now
            item.last_error = ""
            _incident_close(clinic)
        else:
            item.status = Status.FAILED
            item.last_error = (error or "The agent reported a failure without a reason.")[:2000]
            _incident_open(clinic, item.last_error)
        item.save(update_fields=["status", "attempts", "delivered_at", "last_error"])
    return item


# --- failed rows: retry, incidents -----------------------------------------------------------


class RetryError(ValueError):
    """This row cannot be retried (not failed, or already retried)."""


def writeback_retry(*, item: WritebackItem, actor: Any, request: Any = None) -> WritebackItem:
    """A new attempt for a failed row, linked to it; identifiers are refreshed from the
    records (a pet linked to the PIMS since is now found)."""
    with transaction.atomic():
        original = WritebackItem.objects.select_for_update().get(pk=item.pk)
        if original.status != Status.FAILED:
            raise RetryError("Only a failed writeback can be retried.")
        prescription = Prescription.objects.select_related("patient__client", "vet", "clinic").get(
            pk=original.prescription_id
        )
        payload = dict(original.payload)
        if original.kind == Kind.PRESCRIBE:
            payload.update(_identity(prescription))
        elif original.target == Target.AGENT:
            payload["client_pims_id"] = prescription.patient.client.pims_id
            payload["patient_pims_id"] = prescription.patient.pims_id
        count = WritebackItem.objects.filter(key__startswith=f"{original.key}:retry").count()
        retry = WritebackItem.objects.create(
            clinic=original.clinic,
            prescription=prescription,
            order=original.order,
            kind=original.kind,
            target=original.target,
            sequence=original.sequence,
            key=f"{original.key}:retry{count + 1}",
            payload=payload,
            retry_of=original,
        )
        original.status = Status.RETRIED
        original.save(update_fields=["status"])
        audit_log(
            action="writeback.retried",
            actor=actor,
            request=request,
            clinic=original.clinic,
            obj=retry,
            after={"retry_of": original.pk, "kind": original.kind},
        )
        if retry.target == Target.EZYVET:
            _deliver_on_commit(retry.pk)
    return retry


def _incident_open(clinic: Clinic, error: str) -> None:
    if WritebackIncident.objects.filter(clinic=clinic, closed_at__isnull=True).exists():
        return
    try:
        with transaction.atomic():
            incident = WritebackIncident.objects.create(clinic=clinic, first_error=error[:2000])
    except IntegrityError:
        return  # another worker opened it a moment ago: one incident, one email
    from prescriptions.tasks import writeback_incident_alert

    writeback_incident_alert.delay_on_commit(incident.pk)


def _incident_close(clinic: Clinic) -> None:
    """A delivery went through and nothing is left failed: the incident is over."""
    if WritebackItem.objects.filter(clinic=clinic, status=Status.FAILED).exists():
        return
    WritebackIncident.objects.filter(clinic=clinic, closed_at__isnull=True).update(
        closed_at=timezone.now()
    )


def writeback_incident_alert(*, incident_id: int) -> bool:
    """Email the clinic and the onboarding team once for an incident; False if already sent.
    The email is sent before the incident is marked alerted, in one transaction: a failed
    send leaves it unmarked, for the task's retry or the next sweep."""
    with transaction.atomic():
        incident = (
            WritebackIncident.objects.select_for_update(skip_locked=True)
            .select_related("clinic")
            .filter(pk=incident_id, alerted_at__isnull=True)
            .first()
        )
        if incident is None:
            return False
        clinic = incident.clinic
        failed = WritebackItem.objects.filter(clinic=clinic, status=Status.FAILED).count()
        context = {
            "clinic": clinic,
            "incident": incident,
            "failed": failed,
            "monitor_url": settings.SITE_URL.rstrip("/")
            + reverse("prescriptions:writeback-monitor", kwargs={"clinic_slug": clinic.slug})
            + "?status=failed",
        }
        subject, body = render_email("writeback_failing", context)
        recipients = [r for r in (clinic.email, settings.ONBOARDING_TEAM_EMAIL) if r]
        EmailMessage(subject=subject, body=body, to=recipients).send()
        incident.alerted_at = timezone.now()
        incident.save(update_fields=["alerted_at"])
    return True


def incidents_unalerted(*, older_than: dt.timedelta = dt.timedelta(minutes=1)) -> list[int]:
    """Open incidents whose email has not gone out (a failed send): the sweep retries them."""
    return list(
        WritebackIncident.objects.filter(
            closed_at__isnull=True,
            alerted_at__isnull=True,
            opened_at__lt=timezone.now() - older_than,
        ).values_list("pk", flat=True)
    )


class DismissError(ValueError):
    """This row cannot be dismissed (only a failed one can)."""


def writeback_dismiss(
    *, item: WritebackItem, actor: Any, reason: str, request: Any = None
) -> WritebackItem:
    """Staff resolve a failed row without sending it (the PIMS was corrected by hand, or the
    change no longer matters); it stops holding back later rows and the clinic's incident."""
    if not reason.strip():
        raise DismissError("Say why this writeback is resolved without sending it.")
    with transaction.atomic():
        row = WritebackItem.objects.select_for_update().get(pk=item.pk)
        if row.status != Status.FAILED:
            raise DismissError("Only a failed writeback can be dismissed.")
        row.status = Status.DISMISSED
        row.last_error = f"{row.last_error}\nDismissed: {reason.strip()}".strip()[:2000]
        row.save(update_fields=["status", "last_error"])
        audit_log(
            action="writeback.dismissed",
            actor=actor,
            request=request,
            clinic=row.clinic,
            obj=row,
            after={"reason": reason.strip()},
        )
        _incident_close(row.clinic)
        _deliver_next_on_commit(row)
    return row


def writeback_stats_by_clinic() -> dict[int, dict[str, Any]]:
    """Per clinic id: failed, pending (or sending) and delivered counts, the oldest pending
    row's time and the last delivery, for the onboarding team's lists across clinics."""
    waiting = Q(status__in=(Status.PENDING, Status.SENDING))
    return {
        row["clinic"]: dict(row)
        for row in WritebackItem.objects.values("clinic")
        .order_by()
        .annotate(
            failed=Count("pk", filter=Q(status=Status.FAILED)),
            pending=Count("pk", filter=waiting),
            delivered=Count("pk", filter=Q(status=Status.DELIVERED)),
            oldest_pending=Min("created_at", filter=waiting),
            last_success=Max("delivered_at"),
        )
    }


def open_incidents_by_clinic() -> dict[int, WritebackIncident]:
    return {
        incident.clinic_id: incident
        for incident in WritebackIncident.objects.filter(closed_at__isnull=True)
    }


def writeback_counts(*, clinic: Clinic | None = None) -> dict[str, Any]:
    """Counts by status and the last success, for the monitor and the dashboard."""
    rows = WritebackItem.objects.all()
    if clinic is not None:
        rows = rows.filter(clinic=clinic)
    counts = dict.fromkeys(Status.values, 0)
    for row in rows.values("status").order_by().annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    last = rows.filter(status=Status.DELIVERED).aggregate(m=Max("delivered_at"))["m"]
    return {"counts": counts, "last_success": last}
