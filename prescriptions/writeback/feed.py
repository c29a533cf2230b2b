"""The agent feed: the line items an on-premise agent pulls for its PIMS, and its acks."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from clinics.models import Clinic
from prescriptions.models import WritebackAttempt, WritebackItem
from prescriptions.writeback.incidents import _incident_close, _incident_open
from prescriptions.writeback.outbox import Status, Target

FEED_PAGE = 200


class AckError(ValueError):
    """An acknowledgement that cannot be taken (unknown item, bad body)."""


def holding_back(prescription_id: Any, sequence: Any, pk: Any) -> QuerySet[WritebackItem]:
    """The earlier lines of a prescription that hold its line (``sequence``, ``pk``) back
    from the feed. Lines are listed by id, which is their order except for a retry (a new id
    for an early line): a line waits while an earlier line of its prescription failed, or is
    a retry that comes later in the list."""
    earlier = WritebackItem.objects.filter(prescription_id=prescription_id, sequence__lt=sequence)
    return earlier.filter(Q(status=Status.FAILED) | Q(status=Status.PENDING, pk__gt=pk))


def agent_feed(
    *, clinic: Clinic, after: int = 0, limit: int = FEED_PAGE
) -> tuple[list[dict[str, Any]], int]:
    """The clinic's pending line items after the cursor, oldest first, in the feed's format,
    and the cursor for the next call. A line waiting for an earlier line of its prescription
    (a failed dispense being retried) is held back, and the cursor stays before it."""
    pending = WritebackItem.objects.filter(
        clinic=clinic, target=Target.AGENT, status=Status.PENDING, pk__gt=after
    )
    waiting = Exists(
        holding_back(OuterRef("prescription_id"), OuterRef("sequence"), OuterRef("pk"))
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
