"""Delivery of outbox rows to ezyVet: claim, send, back off, record the outcome; the due sweep.

Delivery claims a row with a conditional update, talks to the PIMS outside any transaction,
and records the outcome. Never sent twice: a POST retried after an ambiguous failure first
looks its ``external_reference`` up, and a PATCH retried first reads the prescription back to
see whether it was already applied. Rows of one prescription go in ``sequence`` order.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from clinics.models import Clinic
from clinics.prescribers import PimsListError, prescriber_hold_reason
from clinics.services import CredentialsError, ezyvet_client
from prescriptions.models import Prescription, WritebackAttempt, WritebackItem
from prescriptions.writeback.feed import holding_back
from prescriptions.writeback.incidents import _incident_close, _incident_open
from prescriptions.writeback.outbox import Kind, Status, Target, _deliver_next_on_commit
from vetsync.pims import ezyvet
from vetsync.pims.ezyvet.shared_limits import WRITEBACK

log = logging.getLogger(__name__)

# How long a new row is left to the message its commit sent before the sweep sends another.
SWEEP_GRACE = dt.timedelta(seconds=60)
# Rows that hold back later rows of the same prescription (a failed one until it is retried).
BLOCKING = (Status.PENDING, Status.SENDING, Status.HELD, Status.FAILED)
# How often a held row (a prescriber ezyVet does not know) is looked at again; not an attempt.
HOLD_RECHECK = dt.timedelta(minutes=5)


def _blocking(prescription_id: Any, sequence: Any) -> QuerySet[WritebackItem]:
    """The earlier rows of a prescription not through yet: its row ``sequence`` waits."""
    return WritebackItem.objects.filter(
        prescription_id=prescription_id, sequence__lt=sequence, status__in=BLOCKING
    )


def _blocked() -> Exists:
    """For a row in a queryset: an earlier row of its prescription is not through yet."""
    return Exists(_blocking(OuterRef("prescription_id"), OuterRef("sequence")))


def writeback_waiting_for(item: WritebackItem) -> WritebackItem | None:
    """The earlier row of its prescription an open row waits for (a prescription's rows reach
    the PIMS in order), as its delivery holds it back: the agent's feed, or ezyVet's sends."""
    if not item.is_open:
        return None
    if item.target == Target.AGENT:
        earlier = holding_back(item.prescription_id, item.sequence, item.pk)
    else:
        earlier = _blocking(item.prescription_id, item.sequence)
    return earlier.order_by("sequence", "pk").first()


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
            priority=WRITEBACK,  # within the site's budget, before its pulls
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
    due = Q(status__in=(Status.PENDING, Status.HELD), next_attempt_at__lte=now) | Q(
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
    if not missing:
        return ""
    return (
        "Not sent: "
        + "; ".join(missing)
        + ". Link the records (the next sync, or the vet's PIMS user id), then retry."
    )


def _prescriber_hold(item: WritebackItem, client: ezyvet.EzyVetClient) -> str:
    """A prescription goes to ezyVet only with a prescriber ezyVet knows: the vet's current
    ezyVet user (refreshed into the payload: the mapping may have been fixed since), checked
    against the site's vet users. Otherwise the reason it is held."""
    if item.kind != Kind.PRESCRIBE:
        return ""
    vet = item.prescription.vet
    reason = prescriber_hold_reason(vet=vet, integration=item.clinic.integration, client=client)
    if not reason and item.payload.get("prescribing_vet_user_id") != vet.pims_user_id:
        item.payload["prescribing_vet_user_id"] = vet.pims_user_id
        WritebackItem.objects.filter(pk=item.pk).update(payload=item.payload)
    return reason


def _held(item: WritebackItem, attempt: WritebackAttempt, reason: str) -> Delivery:
    """Park the row with its reason for the clinic; it is looked at again, uncounted, until
    the prescriber is known (then it is sent), and holds back the prescription's later rows."""
    now = timezone.now()
    with transaction.atomic():
        if not _still_ours(item).update(
            status=Status.HELD,
            attempts=F("attempts") - 1,
            next_attempt_at=now + HOLD_RECHECK,
            claimed_until=None,
            last_error=reason[:2000],
        ):
            return Delivery(item.pk, "superseded", reason)
        WritebackAttempt.objects.filter(pk=attempt.pk).delete()
    log.info("writeback %s held: %s", item.pk, reason)
    return Delivery(item.pk, "held", reason)


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
        held = _prescriber_hold(item, client)
        if held:
            return _held(item, attempt, held)
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
        known = ezyvet.EzyVetError | CredentialsError | PimsListError | requests.RequestException
        if not isinstance(exc, known):
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
            Q(status__in=(Status.PENDING, Status.HELD), next_attempt_at__lte=now)
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
