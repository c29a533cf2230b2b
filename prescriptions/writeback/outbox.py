"""The WriteBack outbox: what is written back and where, and the rows each change adds.

Writing (``writeback_*_enqueue``) happens inside the caller's transaction, so the row and the
change that caused it commit or roll back together; the delivery task is published on commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from clinics.models import Clinic, Connector
from prescriptions.models import (
    ItemStatus,
    Order,
    OrderLine,
    Prescription,
    PrescriptionItem,
    WritebackItem,
)
from prescriptions.rules import writeback_eligibility

Target = WritebackItem.Target
Kind = WritebackItem.Kind
Status = WritebackItem.Status


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


def _epoch(value: dt.datetime | dt.date, clinic: Clinic) -> int:
    """ezyVet's epoch seconds, which it shows in the site's (the clinic's) zone: an instant
    as is, a date-only value as noon at the clinic (noon UTC is already tomorrow in NZ)."""
    if not isinstance(value, dt.datetime):
        value = clinic.local_noon(value)
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
        "date_of_prescription": _epoch(prescription.approved_at, prescription.clinic),
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
    from prescriptions.tasks import writeback_deliver_task  # tasks import this package

    writeback_deliver_task.delay_on_commit(item_id)


def _deliver_next_on_commit(item: WritebackItem) -> None:
    """Once this row's outcome is committed, send the next row of its prescription. Looked up
    after the commit: a row written meanwhile whose own message found this one still
    sending is then seen here, instead of waiting for the sweep."""

    def send_next() -> None:
        from prescriptions.tasks import writeback_deliver_task  # tasks import this package

        for successor in _due_successors(item):
            writeback_deliver_task.delay(successor)

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
    shipped_at = _epoch(dispensed_at, order.clinic)
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
                    "status_date": _epoch(item.status_date, prescription.clinic),
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
            "status_date": prescription.clinic.localtime(item.status_date).isoformat(),
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


def writeback_return_enqueue(
    *,
    order: Order,
    returned: Sequence[tuple[OrderLine, int]],
    returned_at: dt.datetime,
    reason: str,
) -> list[WritebackItem]:
    """A shipment came back: a ``return`` line on the agent feed for each returned line whose
    dispense went there. ezyVet has no "returned" status: nothing is sent to it (a return that
    stops the prescription ends its items, which goes as a status PATCH)."""
    target = writeback_target(order.clinic)
    if target != Target.AGENT:
        return []
    rows = []
    for line, quantity in returned:
        item = line.prescription_item
        if item is None:
            continue
        told = WritebackItem.objects.filter(
            order=order,
            kind=Kind.DISPENSE,
            target=target,
            payload__product_reference=line.product.sku,
        ).exclude(status__in=(Status.RETRIED, Status.DISMISSED))
        if not told.exists():
            continue  # the PIMS never heard of this dispense: nothing to take back
        rx = item.prescription
        payload = {
            **_agent_line(rx, item, kind="return", order=order),
            "qty": quantity,
            "remaining": item.remaining,
            "returned_at": returned_at.isoformat(),
            "reason": reason,
        }
        row = _add(
            prescription=rx,
            kind=Kind.RETURN,
            target=target,
            key=f"rx:{rx.pk}:order:{order.pk}:line:{line.pk}:return",
            payload=payload,
            order=order,
        )
        if row is not None:
            rows.append(row)
    return rows
