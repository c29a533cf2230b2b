"""Returns: recording that a shipment came back (or never reached the owner).

What reaches the PIMS (decided in issue 21): ezyVet has no "returned" status, declines only
before a dispense, and a PATCH without a status must carry a dispense date; so a return sends
ezyVet nothing unless the prescription is stopped with it, which ends its items
(CANCELLED_CLIENT or CANCELLED_DR, a status PATCH). An agent's feed gets a ``return`` line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from clinics.audit import audit_log
from prescriptions.models import (
    OPEN_ITEM_STATUSES,
    Order,
    OrderLine,
    Prescription,
    PrescriptionItem,
    ReturnEnd,
    ReturnReason,
    ShipmentReturn,
    ShipmentReturnLine,
)
from prescriptions.services.prescribing import PrescriptionError, prescription_items_end
from prescriptions.writeback import writeback_return_enqueue


def _returned_quantities(
    lines: list[OrderLine], quantities: Mapping[int, int] | None
) -> list[tuple[OrderLine, int]]:
    """Each line with the quantity that came back: all of it unless told otherwise."""
    chosen = []
    for line in lines:
        quantity = line.quantity if quantities is None else quantities.get(line.pk, 0)
        if quantity < 0 or quantity > line.quantity:
            raise PrescriptionError(
                f"{line.product}: between 0 and {line.quantity} can come back ({quantity} given)."
            )
        if quantity:
            chosen.append((line, quantity))
    if not chosen:
        raise PrescriptionError("Give the quantity that came back for at least one line.")
    return chosen


def _check_day(order: Order, returned_on: dt.date) -> None:
    if returned_on > order.clinic.localdate():
        raise PrescriptionError("The return date cannot be in the future.")
    if order.shipped_on and returned_on < order.shipped_on:
        raise PrescriptionError(
            f"{order.number} shipped on {order.shipped_on:%d %b %Y}: "
            "it cannot have come back before that."
        )


def _return_time(order: Order, returned_on: dt.date) -> dt.datetime:
    now = order.clinic.localtime()
    return now if returned_on == now.date() else order.clinic.local_noon(returned_on)


def order_return(
    *,
    order: Order,
    actor: Any,
    reason: str,
    returned_on: dt.date | None = None,
    quantities: Mapping[int, int] | None = None,
    end_as: str = ReturnEnd.KEEP,
    note: str = "",
    request: HttpRequest | None = None,
) -> ShipmentReturn:
    """Record that a shipped order came back (all of it, or ``quantities`` per line id): what
    came back is no longer dispensed, so the prescription has it left again; ``end_as`` stops
    the prescriptions it filled (their open items end, written back as a status)."""
    if reason not in ReturnReason.values:
        raise PrescriptionError("Choose why the shipment came back.")
    if end_as not in ReturnEnd.values:
        raise PrescriptionError("Choose what happens to the prescription.")
    with transaction.atomic():
        order = Order.objects.select_for_update().select_related("clinic").get(pk=order.pk)
        if ShipmentReturn.objects.filter(order=order).exists():
            raise PrescriptionError(f"A return of {order.number} is already recorded.")
        if order.status != Order.Status.SHIPPED:
            raise PrescriptionError(
                f"{order.number} is {order.get_status_display().lower()}: only a shipped "
                "order can come back."
            )
        returned_on = returned_on or order.clinic.localdate()
        _check_day(order, returned_on)
        lines = list(order.lines.select_related("product").order_by("pk"))
        chosen = _returned_quantities(lines, quantities)
        is_full = sum(q for _, q in chosen) == sum(line.quantity for line in lines)
        record = ShipmentReturn.objects.create(
            clinic=order.clinic,
            order=order,
            reason=reason,
            note=note.strip(),
            returned_on=returned_on,
            is_full=is_full,
            ended_as=end_as,
            recorded_by=actor if getattr(actor, "pk", None) else None,
            recorded_by_label=str(actor) if actor is not None else "system",
        )
        ShipmentReturnLine.objects.bulk_create(
            ShipmentReturnLine(shipment_return=record, order_line=line, quantity=quantity)
            for line, quantity in chosen
        )
        prescriptions = _undispense(chosen)
        if is_full:
            order.status = Order.Status.RETURNED
            order.save(update_fields=["status", "updated_at"])
        audit_log(
            action="order.returned",
            actor=actor,
            request=request,
            clinic=order.clinic,
            obj=order,
            after={
                "reason": ReturnReason(reason).label,
                "reason_code": reason,
                "returned_on": returned_on,
                "lines": [(line.product.sku, quantity) for line, quantity in chosen],
                "full": is_full,
                "prescriptions": end_as or "kept open",
                "note": note.strip(),
            },
        )
        writeback_return_enqueue(
            order=order,
            returned=chosen,
            returned_at=_return_time(order, returned_on),
            reason=ReturnReason(reason).label,
        )
        if end_as:
            _stop(prescriptions, order=order, actor=actor, end_as=end_as, reason=reason)
    return record


def _undispense(chosen: list[tuple[OrderLine, int]]) -> list[Prescription]:
    """What came back was not dispensed after all: the item has it left again. The item stays
    Current (ezyVet never takes an item back to Pending)."""
    ids = [line.prescription_item_id for line, _ in chosen if line.prescription_item_id]
    items = {
        item.pk: item
        for item in PrescriptionItem.objects.select_for_update()
        .select_related("prescription")
        .filter(pk__in=ids)
    }
    prescriptions: dict[int, Prescription] = {}
    for line, quantity in chosen:
        item = items.get(line.prescription_item_id or 0)
        if item is None:
            continue
        item.dispensed_quantity = max(item.dispensed_quantity - quantity, 0)
        item.save(update_fields=["dispensed_quantity"])
        line.prescription_item = item
        prescriptions[item.prescription_id] = item.prescription
    return list(prescriptions.values())


def _stop(
    prescriptions: list[Prescription], *, order: Order, actor: Any, end_as: str, reason: str
) -> None:
    why = f"{order.number} came back: {ReturnReason(reason).label}"
    for prescription in prescriptions:
        if not prescription.items.filter(status__in=OPEN_ITEM_STATUSES).exists():
            continue  # already ended
        prescription_items_end(
            prescription=prescription,
            actor=actor,
            reason=why,
            status=None,
            by_client=end_as == ReturnEnd.CANCELLED_CLIENT,
        )
