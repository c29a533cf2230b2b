"""Orders: placing, shipping (a dispense, written back), hold, release, cancel; autoship."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Sum
from django.http import HttpRequest
from django.utils import timezone

from clinics.audit import audit_log
from clinics.models import Clinic
from prescriptions.models import (
    Autoship,
    Channel,
    ItemStatus,
    Order,
    OrderLine,
    Prescription,
    PrescriptionItem,
    Product,
)
from prescriptions.rules import TransitionError, check_dispense
from prescriptions.services.prescribing import PrescriptionError, _check_patient
from prescriptions.writeback import writeback_dispense_enqueue
from records.models import Patient


@dataclass(frozen=True)
class LineSpec:
    product: Product
    quantity: int
    prescription_item: PrescriptionItem | None = None


def _on_open_orders(item_ids: Sequence[int]) -> dict[int, int]:
    """Per prescription item, the quantity on orders placed or on hold (not yet shipped)."""
    rows = (
        OrderLine.objects.filter(
            prescription_item_id__in=item_ids,
            order__status__in=(Order.Status.PLACED, Order.Status.ON_HOLD),
        )
        .values("prescription_item_id")
        .annotate(total=Sum("quantity"))
    )
    return {row["prescription_item_id"]: row["total"] for row in rows}


def _check_line(patient: Patient, line: LineSpec, channel: str, reserved: int = 0) -> None:
    if line.quantity < 1:
        raise PrescriptionError("Each line needs a quantity of at least 1.")
    item = line.prescription_item
    if item is None:
        if line.product.needs_prescription:
            raise PrescriptionError(
                f"{line.product} needs a prescription: choose the prescription item it fills."
            )
        return
    rx = item.prescription
    if rx.patient_id != patient.pk:
        raise PrescriptionError(f"{rx.number} is for another pet.")
    if item.product_id != line.product.pk:
        raise PrescriptionError(f"{rx.number} does not prescribe {line.product}.")
    if rx.state != Prescription.State.APPROVED:
        raise PrescriptionError(f"{rx.number} is not approved yet.")
    if rx.needs_payment and rx.paid_at is None:
        raise PrescriptionError(f"{rx.number} is not paid yet.")
    if not item.is_open:
        raise PrescriptionError(f"{line.product} on {rx.number} has ended.")
    if rx.is_expired:
        raise PrescriptionError(f"{rx.number} expired on {rx.expires_on:%d %b %Y}.")
    available = item.remaining - reserved
    if line.quantity > available:
        waiting = f" ({reserved} more on open orders)" if reserved else ""
        raise PrescriptionError(
            f"{rx.number} has {max(available, 0)} of {line.product} left{waiting}; "
            f"{line.quantity} were ordered."
        )


def order_place(
    *,
    clinic: Clinic,
    patient: Patient,
    lines: Sequence[LineSpec],
    actor: Any,
    channel: str = Channel.PORTAL,
    autoship: Autoship | None = None,
    submission_id: uuid.UUID | None = None,
    request: HttpRequest | None = None,
) -> Order:
    """Place an order for a pet: prescription lines fill an approved, open item. A repeated
    ``submission_id`` (a double click) returns the order it already placed."""
    if submission_id is not None:
        made = Order.objects.filter(clinic=clinic, submission_id=submission_id).first()
        if made is not None:
            return made
    _check_patient(clinic, patient)
    if not lines:
        raise PrescriptionError("Add at least one line.")
    with transaction.atomic():
        locked_items = {
            item.pk: item
            for item in PrescriptionItem.objects.select_for_update()
            .select_related("prescription", "product")
            .filter(pk__in=[line.prescription_item.pk for line in lines if line.prescription_item])
        }
        filled = [line.prescription_item.pk for line in lines if line.prescription_item]
        if len(filled) != len(set(filled)):
            raise PrescriptionError("Each prescription item can fill one line of an order.")
        reserved = _on_open_orders(list(locked_items))
        checked = []
        for line in lines:
            item = locked_items.get(line.prescription_item.pk) if line.prescription_item else None
            spec = LineSpec(product=line.product, quantity=line.quantity, prescription_item=item)
            _check_line(patient, spec, channel, reserved.get(item.pk, 0) if item else 0)
            if item is not None:
                reserved[item.pk] = reserved.get(item.pk, 0) + line.quantity
            checked.append(spec)
        order = Order.objects.create(
            clinic=clinic,
            client=patient.client,
            patient=patient,
            channel=channel,
            autoship=autoship,
            placed_by=actor if getattr(actor, "pk", None) else None,
            submission_id=submission_id,
        )
        OrderLine.objects.bulk_create(
            OrderLine(
                order=order,
                product=spec.product,
                prescription_item=spec.prescription_item,
                quantity=spec.quantity,
                price=spec.product.price * spec.quantity,
            )
            for spec in checked
        )
        audit_log(
            action="order.placed",
            actor=actor,
            request=request,
            clinic=clinic,
            obj=order,
            after={"lines": [(s.product.sku, s.quantity) for s in checked], "channel": channel},
        )
    return order


def _dispense_time(clinic: Clinic, shipped_on: dt.date) -> dt.datetime:
    """The dispense time, to the second: the ship date at the clinic, at the time of day it
    was recorded there (so the PIMS, reading it in the clinic's zone, shows that date)."""
    now = clinic.localtime()
    if shipped_on == now.date():
        return now
    return dt.datetime.combine(shipped_on, now.time(), tzinfo=clinic.zone)


def _check_shipped_after_approval(rx: Prescription, shipped_on: dt.date) -> None:
    assert rx.approved_at is not None  # only an approved item is on an order
    approved_on = rx.clinic.localdate(rx.approved_at)
    if shipped_on < approved_on:
        raise PrescriptionError(
            f"{rx.number} was approved on {approved_on:%d %b %Y}: "
            "it cannot have shipped before that."
        )


def _locked_order(order: Order) -> Order:
    return Order.objects.select_for_update().select_related("clinic", "patient").get(pk=order.pk)


def order_ship(
    *,
    order: Order,
    actor: Any,
    shipped_on: dt.date | None = None,
    carrier: str = "",
    tracking_number: str = "",
    request: HttpRequest | None = None,
) -> Order:
    """Record the shipment: each prescription line is a dispense (the item becomes Current),
    written back where eligible, in this transaction."""
    with transaction.atomic():
        order = _locked_order(order)
        # Dates are the clinic's: 18:26 in Los Angeles is already tomorrow in UTC.
        today = order.clinic.localdate()
        shipped_on = shipped_on or today
        if shipped_on > today:
            raise PrescriptionError("The ship date cannot be in the future.")
        if order.status == Order.Status.ON_HOLD:
            raise PrescriptionError(f"{order.number} is on hold: {order.hold_reason}")
        if order.status != Order.Status.PLACED:
            raise PrescriptionError(
                f"{order.number} is {order.get_status_display().lower()}; it cannot ship."
            )
        lines = list(order.lines.select_related("product"))
        item_ids = [line.prescription_item_id for line in lines if line.prescription_item_id]
        items = {
            item.pk: item
            for item in PrescriptionItem.objects.select_for_update()
            .select_related("prescription__clinic", "prescription__patient__client")
            .select_related("prescription__vet", "product")
            .filter(pk__in=item_ids)
        }
        dispensed_at = _dispense_time(order.clinic, shipped_on)
        for line in lines:
            if line.prescription_item_id is None:
                continue
            item = items[line.prescription_item_id]
            _check_shipped_after_approval(item.prescription, shipped_on)
            try:
                check_dispense(item.status)
            except TransitionError as exc:
                raise PrescriptionError(f"{line.product}: {exc}") from exc
            if line.quantity > item.remaining:
                raise PrescriptionError(
                    f"{item.prescription.number} has {item.remaining} of {line.product} left; "
                    f"{line.quantity} would ship."
                )
            item.status = ItemStatus.CURRENT
            item.status_date = dispensed_at
            item.dispensed_quantity += line.quantity
            item.last_dispensed_at = dispensed_at
            item.save(
                update_fields=["status", "status_date", "dispensed_quantity", "last_dispensed_at"]
            )
            line.prescription_item = item
        order.status = Order.Status.SHIPPED
        order.shipped_on = shipped_on
        order.carrier = carrier.strip()
        order.tracking_number = tracking_number.strip()
        order.save(
            update_fields=["status", "shipped_on", "carrier", "tracking_number", "updated_at"]
        )
        audit_log(
            action="order.shipped",
            actor=actor,
            request=request,
            clinic=order.clinic,
            obj=order,
            after={"shipped_on": shipped_on, "carrier": carrier, "tracking": tracking_number},
        )
        writeback_dispense_enqueue(order=order, lines=lines, dispensed_at=dispensed_at)
    return order


def order_hold(
    *, order: Order, actor: Any, reason: str, request: HttpRequest | None = None
) -> Order:
    if not reason.strip():
        raise PrescriptionError("Say why the order is put on hold.")
    with transaction.atomic():
        order = _locked_order(order)
        if order.status != Order.Status.PLACED:
            raise PrescriptionError(f"Only a placed order can be put on hold ({order.number}).")
        order.status = Order.Status.ON_HOLD
        order.hold_reason = reason.strip()[:300]
        order.save(update_fields=["status", "hold_reason", "updated_at"])
        audit_log(
            action="order.held",
            actor=actor,
            request=request,
            clinic=order.clinic,
            obj=order,
            after={"reason": order.hold_reason},
        )
    return order


def order_release(*, order: Order, actor: Any, request: HttpRequest | None = None) -> Order:
    with transaction.atomic():
        order = _locked_order(order)
        if order.status != Order.Status.ON_HOLD:
            raise PrescriptionError(f"{order.number} is not on hold.")
        if order.patient.is_deceased:
            raise PrescriptionError(
                f"{order.patient.name} is recorded as deceased; cancel the order instead."
            )
        before = order.hold_reason
        order.status = Order.Status.PLACED
        order.hold_reason = ""
        order.save(update_fields=["status", "hold_reason", "updated_at"])
        audit_log(
            action="order.released",
            actor=actor,
            request=request,
            clinic=order.clinic,
            obj=order,
            before={"hold_reason": before},
        )
    return order


def order_cancel(
    *, order: Order, actor: Any, reason: str, request: HttpRequest | None = None
) -> Order:
    """Cancel an order that has not shipped (nothing was dispensed, nothing to write back)."""
    if not reason.strip():
        raise PrescriptionError("Say why the order is cancelled.")
    with transaction.atomic():
        order = _locked_order(order)
        if not order.is_open:
            hint = (
                " If it came back, record a return." if order.status == Order.Status.SHIPPED else ""
            )
            raise PrescriptionError(
                f"{order.number} is {order.get_status_display().lower()}; it cannot be "
                f"cancelled.{hint}"
            )
        order.status = Order.Status.CANCELLED
        order.cancelled_at = timezone.now()
        order.hold_reason = reason.strip()[:300]
        order.save(update_fields=["status", "cancelled_at", "hold_reason", "updated_at"])
        audit_log(
            action="order.cancelled",
            actor=actor,
            request=request,
            clinic=order.clinic,
            obj=order,
            after={"reason": reason.strip()},
        )
    return order


# --- autoship --------------------------------------------------------------------------------


def autoship_create(
    *,
    item: PrescriptionItem,
    actor: Any,
    interval_days: int = 30,
    quantity: int | None = None,
    first_on: dt.date | None = None,
    request: HttpRequest | None = None,
) -> Autoship:
    if interval_days < 7:
        raise PrescriptionError("Autoship repeats every 7 days at the most often.")
    with transaction.atomic():
        item = (
            PrescriptionItem.objects.select_for_update()
            .select_related("prescription__clinic", "prescription__patient", "product")
            .get(pk=item.pk)
        )
        rx = item.prescription
        if rx.state != Prescription.State.APPROVED or not item.is_open:
            raise PrescriptionError("Autoship needs an approved, open prescription item.")
        if rx.needs_payment and rx.paid_at is None:
            raise PrescriptionError(f"{rx.number} is not paid yet.")
        if Autoship.objects.filter(
            prescription_item=item, status__in=(Autoship.Status.ACTIVE, Autoship.Status.ON_HOLD)
        ).exists():
            raise PrescriptionError(f"{item.product} on {rx.number} already has an autoship.")
        autoship = Autoship.objects.create(
            clinic=rx.clinic,
            patient=rx.patient,
            prescription_item=item,
            product=item.product,
            quantity=quantity or item.quantity,
            interval_days=interval_days,
            next_order_on=first_on or rx.clinic.localdate(),
        )
        audit_log(
            action="autoship.created", actor=actor, request=request, clinic=rx.clinic, obj=autoship
        )
    return autoship


def autoships_due(*, today: dt.date | None = None) -> int:
    """Place the order of every active autoship that is due (``today``, or today at each
    clinic); one that cannot be placed (the prescription ran out or ended) is put on hold with
    the reason, for staff."""
    placed = 0
    # The latest "today" of any clinic (UTC+14); each clinic's own today is checked below.
    latest = today or (timezone.now() + dt.timedelta(hours=14)).date()
    due = Autoship.objects.filter(status=Autoship.Status.ACTIVE, next_order_on__lte=latest)
    for autoship_id, prescription_id in due.values_list("pk", "prescription_item__prescription"):
        with transaction.atomic():
            # Locks in the order ending an item takes them (prescription, then the rest).
            Prescription.objects.select_for_update().filter(pk=prescription_id).exists()
            autoship = (
                Autoship.objects.select_for_update(of=("self",))
                .select_related("clinic", "patient__client", "product", "prescription_item")
                .filter(pk=autoship_id, status=Autoship.Status.ACTIVE, next_order_on__lte=latest)
                .first()
            )
            if autoship is None:
                continue
            day = today or autoship.clinic.localdate()
            if autoship.next_order_on > day:
                continue  # not yet due at the clinic
            try:
                with transaction.atomic():
                    order_place(
                        clinic=autoship.clinic,
                        patient=autoship.patient,
                        lines=[
                            LineSpec(
                                product=autoship.product,
                                quantity=autoship.quantity,
                                prescription_item=autoship.prescription_item,
                            )
                        ],
                        actor=None,
                        autoship=autoship,
                    )
            except PrescriptionError as exc:
                autoship.status = Autoship.Status.ON_HOLD
                autoship.hold_reason = str(exc)[:300]
                autoship.save(update_fields=["status", "hold_reason"])
                continue
            autoship.next_order_on = day + dt.timedelta(days=autoship.interval_days)
            autoship.save(update_fields=["next_order_on"])
            placed += 1
    return placed
