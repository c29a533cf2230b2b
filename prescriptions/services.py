"""Business operations on prescriptions, Rx requests and orders.

Each owns its transaction, checks the rules (``prescriptions/rules.py``), writes the audit row,
and writes the WriteBack outbox row in the same transaction as the change that causes it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Sum
from django.http import HttpRequest
from django.utils import timezone

from clinics.audit import audit_log
from clinics.models import Clinic, Membership, Role, Vet
from clinics.services import render_email
from prescriptions.models import (
    RX_REQUEST_REMINDER_AFTER,
    Autoship,
    Channel,
    ItemStatus,
    Order,
    OrderLine,
    Prescription,
    PrescriptionItem,
    Product,
    RxRequest,
    RxRequestNote,
)
from prescriptions.rules import TransitionError, check_dispense, check_end, end_status_for
from prescriptions.writeback import (
    writeback_dispense_enqueue,
    writeback_end_enqueue,
    writeback_prescribe_enqueue,
)
from records.models import Patient
from records.services import ManualUpdateError

DEFAULT_VALIDITY = dt.timedelta(days=365)
MAX_VALIDITY = dt.timedelta(days=366)


class PrescriptionError(Exception):
    """The action cannot be done; the message is for staff."""


@dataclass(frozen=True)
class ItemSpec:
    product: Product
    quantity: int
    refills: int
    instructions: str


@dataclass(frozen=True)
class LineSpec:
    product: Product
    quantity: int
    prescription_item: PrescriptionItem | None = None


# --- who may prescribe -----------------------------------------------------------------------


def vet_for_user(*, clinic: Clinic, user: Any) -> Vet | None:
    """The clinic's vet record of a user with the vet role, or None (staff, other clinics)."""
    if not getattr(user, "is_authenticated", False):
        return None
    if not Membership.objects.filter(user_id=user.pk, clinic=clinic, role=Role.VET).exists():
        return None
    return Vet.objects.filter(clinic=clinic, user_id=user.pk, is_active=True).first()


def _approving_vet(clinic: Clinic, actor: Any) -> Vet:
    vet = vet_for_user(clinic=clinic, user=actor)
    if vet is None:
        raise PrescriptionError(
            "Only a vet of this clinic can approve: staff draft, a vet approves."
        )
    return vet


def _check_patient(clinic: Clinic, patient: Patient) -> None:
    if patient.clinic_id != clinic.pk:
        raise PrescriptionError("That pet is not a patient of this clinic.")
    if patient.is_deceased:
        raise PrescriptionError(f"{patient.name} is recorded as deceased.")


def _check_items(items: Sequence[ItemSpec]) -> None:
    if not items:
        raise PrescriptionError("Add at least one item.")
    seen = set()
    for spec in items:
        if spec.product.pk in seen:
            raise PrescriptionError(f"{spec.product} is listed twice; use one item per product.")
        seen.add(spec.product.pk)
        if not spec.product.is_active:
            raise PrescriptionError(f"{spec.product} is no longer sold.")
        if spec.quantity < 1:
            raise PrescriptionError("Each item needs a quantity of at least 1.")
        if spec.refills < 0 or spec.refills > 99:
            raise PrescriptionError("Refills must be between 0 and 99.")
        if not spec.instructions.strip():
            raise PrescriptionError(f"Give the instructions for {spec.product}.")


# --- prescriptions ---------------------------------------------------------------------------


def prescription_create(
    *,
    clinic: Clinic,
    patient: Patient,
    vet: Vet,
    items: Sequence[ItemSpec],
    actor: Any,
    channel: str = Channel.PORTAL,
    consult_ref: str = "",
    expires_on: dt.date | None = None,
    notes: str = "",
    approve: bool = False,
    source: str = Prescription.Source.CLINIC,
    replaces: Prescription | None = None,
    submission_id: uuid.UUID | None = None,
    request: HttpRequest | None = None,
) -> Prescription:
    """Write a prescription: a draft for a vet to approve, or (by a vet) approved at once.
    A repeated ``submission_id`` (a double click) returns the prescription it already made."""
    if submission_id is not None:
        made = Prescription.objects.filter(clinic=clinic, submission_id=submission_id).first()
        if made is not None:
            return made
    today = timezone.localdate()
    expires_on = expires_on or today + DEFAULT_VALIDITY
    if expires_on <= today:
        raise PrescriptionError("The expiry date must be in the future.")
    if expires_on > today + MAX_VALIDITY:
        raise PrescriptionError("A prescription is valid for at most a year.")
    if vet.clinic_id != clinic.pk or not vet.is_active:
        raise PrescriptionError("Choose an active vet of this clinic as the prescriber.")
    _check_patient(clinic, patient)
    _check_items(items)
    with transaction.atomic():
        prescription = Prescription.objects.create(
            clinic=clinic,
            patient=patient,
            vet=vet,
            channel=channel,
            consult_ref=consult_ref.strip(),
            patient_name=patient.name,
            notes=notes.strip(),
            expires_on=expires_on,
            created_by=actor if getattr(actor, "pk", None) else None,
            source=source,
            needs_payment=source == Prescription.Source.REQUEST,
            replaces=replaces,
            submission_id=submission_id,
        )
        PrescriptionItem.objects.bulk_create(
            PrescriptionItem(
                prescription=prescription,
                product=spec.product,
                quantity=spec.quantity,
                refills=spec.refills,
                instructions=spec.instructions.strip(),
            )
            for spec in items
        )
        audit_log(
            action="prescription.created",
            actor=actor,
            request=request,
            clinic=clinic,
            obj=prescription,
            after={
                "patient": patient.pk,
                "vet": vet.pk,
                "source": source,
                "items": [(s.product.sku, s.quantity, s.refills) for s in items],
            },
        )
        if approve:
            prescription = prescription_approve(
                prescription=prescription, actor=actor, request=request
            )
    return prescription


def _locked(prescription: Prescription) -> Prescription:
    return (
        Prescription.objects.select_for_update()
        .select_related("clinic", "patient__client", "vet")
        .get(pk=prescription.pk)
    )


def prescription_approve(
    *, prescription: Prescription, actor: Any, request: HttpRequest | None = None
) -> Prescription:
    """A vet approves a draft: it becomes the vet's prescription, items Pending; sent to the
    PIMS now (or, for an owner's request, once it is paid)."""
    with transaction.atomic():
        prescription = _locked(prescription)
        if prescription.state != Prescription.State.DRAFT:
            raise PrescriptionError(
                f"{prescription.number} is {prescription.get_state_display().lower()}, not a draft."
            )
        vet = _approving_vet(prescription.clinic, actor)
        if prescription.patient.is_deceased:
            raise PrescriptionError(f"{prescription.patient.name} is recorded as deceased.")
        if prescription.is_expired:
            raise PrescriptionError("This draft has expired; write a new prescription.")
        now = timezone.now()
        prescription.state = Prescription.State.APPROVED
        prescription.vet = vet
        prescription.approved_at = now
        prescription.approved_by = actor
        prescription.save(
            update_fields=["state", "vet", "approved_at", "approved_by", "updated_at"]
        )
        prescription.items.update(status=ItemStatus.PENDING, status_date=now)
        audit_log(
            action="prescription.approved",
            actor=actor,
            request=request,
            clinic=prescription.clinic,
            obj=prescription,
            after={"vet": vet.pk},
        )
        writeback_prescribe_enqueue(prescription=prescription)
    return prescription


def prescription_discard(
    *, prescription: Prescription, actor: Any, reason: str, request: HttpRequest | None = None
) -> Prescription:
    """Throw a draft away (never approved, so the PIMS never heard of it)."""
    if not reason.strip():
        raise PrescriptionError("Say why the draft is discarded.")
    with transaction.atomic():
        prescription = _locked(prescription)
        if prescription.state != Prescription.State.DRAFT:
            raise PrescriptionError("Only a draft can be discarded; end an approved one instead.")
        prescription.state = Prescription.State.VOID
        prescription.notes = (prescription.notes + f"\nDiscarded: {reason.strip()}").strip()
        prescription.save(update_fields=["state", "notes", "updated_at"])
        audit_log(
            action="prescription.discarded",
            actor=actor,
            request=request,
            clinic=prescription.clinic,
            obj=prescription,
            after={"reason": reason.strip()},
        )
    return prescription


def prescription_mark_paid(
    *, prescription: Prescription, actor: Any, request: HttpRequest | None = None
) -> Prescription:
    """The owner paid for a requested prescription: now it may go to the PIMS."""
    with transaction.atomic():
        prescription = _locked(prescription)
        if not prescription.needs_payment:
            raise PrescriptionError(
                "Only a prescription from an owner's Rx request waits for payment."
            )
        if prescription.state != Prescription.State.APPROVED:
            raise PrescriptionError("Record the payment once a vet has approved it.")
        if prescription.paid_at is not None:
            raise PrescriptionError(f"{prescription.number} is already paid.")
        prescription.paid_at = timezone.now()
        prescription.save(update_fields=["paid_at", "updated_at"])
        audit_log(
            action="prescription.paid",
            actor=actor,
            request=request,
            clinic=prescription.clinic,
            obj=prescription,
        )
        writeback_prescribe_enqueue(prescription=prescription)
    return prescription


def prescription_items_end(
    *,
    prescription: Prescription,
    actor: Any,
    reason: str,
    status: str | None = None,
    statuses: Mapping[int, str] | None = None,
    items: Sequence[PrescriptionItem] | None = None,
    by_client: bool = False,
    request: HttpRequest | None = None,
) -> list[PrescriptionItem]:
    """End open items, all or none: each with its status in ``statuses`` (item id → status),
    or ``status`` for all, checked against ezyVet's rules; otherwise declined when never
    dispensed and cancelled when dispensed. ``items`` default to those in ``statuses``, or all."""
    if not reason.strip():
        raise PrescriptionError("Say why the prescription is ended.")
    statuses = statuses or {}
    with transaction.atomic():
        prescription = _locked(prescription)
        if prescription.state != Prescription.State.APPROVED:
            raise PrescriptionError("Only an approved prescription has items to end.")
        if items is None and statuses:
            wanted: set[int] | None = set(statuses)
        else:
            wanted = {item.pk for item in items} if items is not None else None
        targets = [
            item
            for item in prescription.items.select_for_update().select_related("product")
            if (wanted is None or item.pk in wanted)
        ]
        if wanted is not None and len(targets) != len(wanted):
            raise PrescriptionError("That item is not on this prescription.")
        targets = [item for item in targets if item.is_open or wanted is not None]
        if not targets:
            raise PrescriptionError("Every item of this prescription has already ended.")
        now = timezone.now()
        ended = []
        for item in targets:
            try:
                new_status = (
                    statuses.get(item.pk)
                    or status
                    or end_status_for(item.status, by_client=by_client)
                )
                check_end(item.status, new_status)
            except TransitionError as exc:
                raise PrescriptionError(f"{item.product}: {exc}") from exc
            before = item.status
            item.status = new_status
            item.status_date = now
            item.end_reason = reason.strip()[:300]
            item.save(update_fields=["status", "status_date", "end_reason"])
            ended.append(item)
            audit_log(
                action="prescription.item_ended",
                actor=actor,
                request=request,
                clinic=prescription.clinic,
                obj=prescription,
                before={"item": item.pk, "status": before},
                after={"item": item.pk, "status": new_status, "reason": reason.strip()},
            )
        _after_items_ended(ended, actor=actor, reason=reason.strip())
        writeback_end_enqueue(prescription=prescription, items=ended)
    return ended


def _after_items_ended(items: Sequence[PrescriptionItem], *, actor: Any, reason: str) -> None:
    """What filled the ended items stops: their autoships end, and orders not yet shipped go
    on hold for staff (shipping them would dispense an ended item)."""
    why = f"The prescription item ended: {reason}"[:300]
    for autoship in Autoship.objects.select_for_update().filter(
        prescription_item__in=items, status__in=(Autoship.Status.ACTIVE, Autoship.Status.ON_HOLD)
    ):
        autoship.status = Autoship.Status.ENDED
        autoship.hold_reason = why
        autoship.save(update_fields=["status", "hold_reason"])
        audit_log(action="autoship.ended", actor=actor, obj=autoship, after={"reason": why})
    # By a subquery, not a join: PostgreSQL does not lock rows of a DISTINCT result.
    orders = Order.objects.select_for_update().filter(
        pk__in=OrderLine.objects.filter(prescription_item__in=items).values("order_id"),
        status=Order.Status.PLACED,
    )
    for order in orders:
        order.status = Order.Status.ON_HOLD
        order.hold_reason = why
        order.save(update_fields=["status", "hold_reason", "updated_at"])
        audit_log(action="order.held", actor=actor, obj=order, after={"reason": why})


# --- orders ----------------------------------------------------------------------------------


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
    shipped_on = shipped_on or timezone.localdate()
    if shipped_on > timezone.localdate():
        raise PrescriptionError("The ship date cannot be in the future.")
    with transaction.atomic():
        order = _locked_order(order)
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
        now = timezone.now()
        # The dispense time, to the second: the ship date, at the time it was recorded.
        dispensed_at = (
            now
            if shipped_on == timezone.localdate(now)
            else dt.datetime.combine(shipped_on, timezone.localtime(now).timetz())
        )
        for line in lines:
            if line.prescription_item_id is None:
                continue
            item = items[line.prescription_item_id]
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
            raise PrescriptionError(
                f"{order.number} is {order.get_status_display().lower()}; it cannot be cancelled."
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
            next_order_on=first_on or timezone.localdate(),
        )
        audit_log(
            action="autoship.created", actor=actor, request=request, clinic=rx.clinic, obj=autoship
        )
    return autoship


def autoships_due(*, today: dt.date | None = None) -> int:
    """Place the order of every active autoship that is due; one that cannot be placed (the
    prescription ran out or ended) is put on hold with the reason, for staff."""
    today = today or timezone.localdate()
    placed = 0
    due = Autoship.objects.filter(status=Autoship.Status.ACTIVE, next_order_on__lte=today)
    for autoship_id, prescription_id in due.values_list("pk", "prescription_item__prescription"):
        with transaction.atomic():
            # Locks in the order ending an item takes them (prescription, then the rest).
            Prescription.objects.select_for_update().filter(pk=prescription_id).exists()
            autoship = (
                Autoship.objects.select_for_update(of=("self",))
                .select_related("clinic", "patient__client", "product", "prescription_item")
                .filter(pk=autoship_id, status=Autoship.Status.ACTIVE, next_order_on__lte=today)
                .first()
            )
            if autoship is None:
                continue
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
            autoship.next_order_on = today + dt.timedelta(days=autoship.interval_days)
            autoship.save(update_fields=["next_order_on"])
            placed += 1
    return placed


# --- hooks from records ----------------------------------------------------------------------


def patients_deceased_hold(patients: Sequence[Patient]) -> None:
    """Pets the PIMS reports deceased: their open orders and autoships go on hold for staff.
    Runs inside the sync's transaction (records.hooks)."""
    ids = [p.pk for p in patients]
    reason = "The pet is recorded as deceased in the PIMS; check with the owner."
    for order in Order.objects.select_for_update().filter(
        patient_id__in=ids, status=Order.Status.PLACED
    ):
        order.status = Order.Status.ON_HOLD
        order.hold_reason = reason
        order.save(update_fields=["status", "hold_reason", "updated_at"])
        audit_log(action="order.held", actor_label="sync", obj=order, after={"reason": reason})
    for autoship in Autoship.objects.select_for_update().filter(
        patient_id__in=ids, status=Autoship.Status.ACTIVE
    ):
        autoship.status = Autoship.Status.ON_HOLD
        autoship.hold_reason = reason
        autoship.save(update_fields=["status", "hold_reason"])
        audit_log(
            action="autoship.held", actor_label="sync", obj=autoship, after={"reason": reason}
        )


def _remaining_spec(item: PrescriptionItem) -> ItemSpec | None:
    """The same item for what is left of it, never more (a fill that no longer fits whole is
    left to the approving vet); None when nothing is left."""
    left = item.remaining
    if left <= 0:
        return None
    quantity = min(item.quantity, left)
    return ItemSpec(
        product=item.product,
        quantity=quantity,
        refills=left // quantity - 1,
        instructions=item.instructions,
    )


def patient_renamed_represcribe(patient: Patient, old_name: str, actor: Any, reason: str) -> None:
    """The rename flow: every approved prescription of the pet with open items is ended
    (declined if never dispensed, cancelled if dispensed) and a new draft with what is left of
    them is written under the new name for a vet to approve, linked to the old one; a draft
    (never approved, never sent) just takes the new name. Runs inside the rename's transaction
    (records.hooks); a refusal is staff's message."""
    try:
        _represcribe(patient, old_name, actor, reason)
    except PrescriptionError as exc:
        raise ManualUpdateError(f"The rename was not made: {exc}") from exc


def _represcribe(patient: Patient, old_name: str, actor: Any, reason: str) -> None:
    why = f"Pet renamed from {old_name} to {patient.name}: {reason}"[:300]
    open_rx = (
        Prescription.objects.select_for_update()
        .filter(patient=patient, state__in=(Prescription.State.DRAFT, Prescription.State.APPROVED))
        .select_related("vet", "clinic")
        .order_by("pk")
    )
    for old in open_rx:
        items = list(old.items.select_related("product").order_by("pk"))
        open_items = [i for i in items if i.is_open] if old.state == old.State.APPROVED else items
        if not open_items:
            continue
        if old.state == Prescription.State.DRAFT:
            # Never approved nor sent anywhere: the draft itself takes the new name.
            old.patient_name = patient.name
            old.notes = f"{old.notes}\n{why}".strip()
            old.save(update_fields=["patient_name", "notes", "updated_at"])
            audit_log(
                action="prescription.draft_renamed",
                actor=actor,
                clinic=old.clinic,
                obj=old,
                before={"patient_name": old_name},
                after={"patient_name": patient.name, "reason": reason},
            )
            continue
        prescription_items_end(prescription=old, actor=actor, reason=why, items=open_items)
        specs = [spec for spec in map(_remaining_spec, open_items) if spec is not None]
        if not specs:
            continue
        vet = old.vet if old.vet.is_active else None
        if vet is None:
            vet = Vet.objects.filter(clinic=old.clinic, is_active=True).order_by("pk").first()
        if vet is None:
            raise PrescriptionError("the clinic has no active vet to re-prescribe for.")
        new = prescription_create(
            clinic=old.clinic,
            patient=patient,
            vet=vet,
            items=specs,
            actor=actor,
            channel=old.channel,
            consult_ref=old.consult_ref,
            expires_on=max(old.expires_on, timezone.localdate() + dt.timedelta(days=1)),
            notes=f"Re-prescribed after the rename from {old_name}: {reason}",
            source=Prescription.Source.RENAME,
            replaces=old,
        )
        # An owner's request that was not paid for stays unpaid under the new name.
        if old.needs_payment:
            new.needs_payment = True
            new.paid_at = old.paid_at
            new.save(update_fields=["needs_payment", "paid_at"])


# --- owners' Rx requests ---------------------------------------------------------------------


def rx_request_submit(
    *,
    clinic: Clinic,
    patient: Patient,
    product: Product,
    quantity: int,
    owner_note: str = "",
    channel: str = Channel.STORE,
) -> RxRequest:
    """A pet owner asks for a prescription (from the store); it waits for a vet."""
    _check_patient(clinic, patient)
    if quantity < 1:
        raise PrescriptionError("Ask for at least one.")
    with transaction.atomic():
        rx_request = RxRequest.objects.create(
            clinic=clinic,
            patient=patient,
            product=product,
            quantity=quantity,
            owner_note=owner_note.strip(),
            channel=channel,
        )
        audit_log(
            action="rx_request.submitted",
            actor_label="pet owner",
            clinic=clinic,
            obj=rx_request,
            after={"product": product.sku, "quantity": quantity},
        )
    return rx_request


def _pending_request(rx_request: RxRequest) -> RxRequest:
    locked = (
        RxRequest.objects.select_for_update()
        .select_related("clinic", "patient__client", "product")
        .get(pk=rx_request.pk)
    )
    if locked.status != RxRequest.Status.PENDING:
        raise PrescriptionError(
            f"This request was already handled ({locked.get_status_display().lower()})."
        )
    if locked.expires_at <= timezone.now():
        raise PrescriptionError("This request has expired (45 days without a decision).")
    return locked


def _email_owner(rx_request: RxRequest, template: str) -> None:
    owner = rx_request.patient.client
    if not owner.email:
        return
    subject, body = render_email(template, {"rx_request": rx_request})
    message = EmailMessage(subject=subject, body=body, to=[owner.email])
    transaction.on_commit(message.send)


def rx_request_approve(
    *,
    rx_request: RxRequest,
    actor: Any,
    product: Product | None = None,
    quantity: int | None = None,
    refills: int = 0,
    instructions: str = "",
    owner_message: str = "",
    request: HttpRequest | None = None,
) -> Prescription:
    """A vet approves a request, as asked or with changes: it becomes an approved
    prescription, sent to the PIMS once the owner has paid."""
    with transaction.atomic():
        rx_request = _pending_request(rx_request)
        vet = _approving_vet(rx_request.clinic, actor)
        chosen = product or rx_request.product
        changed = chosen.pk != rx_request.product_id or (
            quantity is not None and quantity != rx_request.quantity
        )
        prescription = prescription_create(
            clinic=rx_request.clinic,
            patient=rx_request.patient,
            vet=vet,
            items=[
                ItemSpec(
                    product=chosen,
                    quantity=quantity or rx_request.quantity,
                    refills=refills,
                    instructions=instructions,
                )
            ],
            actor=actor,
            channel=rx_request.channel,
            source=Prescription.Source.REQUEST,
            approve=True,
            request=request,
        )
        rx_request.status = RxRequest.Status.APPROVED
        rx_request.decided_at = timezone.now()
        rx_request.decided_by = actor
        rx_request.owner_message = owner_message.strip()
        rx_request.prescription = prescription
        rx_request.save(
            update_fields=["status", "decided_at", "decided_by", "owner_message", "prescription"]
        )
        audit_log(
            action="rx_request.approved",
            actor=actor,
            request=request,
            clinic=rx_request.clinic,
            obj=rx_request,
            after={"prescription": prescription.pk, "with_changes": changed},
        )
        _email_owner(rx_request, "rx_request_approved")
    return prescription


def rx_request_decline(
    *,
    rx_request: RxRequest,
    actor: Any,
    reason: str,
    owner_message: str = "",
    request: HttpRequest | None = None,
) -> RxRequest:
    if not reason.strip():
        raise PrescriptionError("Give the reason for declining.")
    with transaction.atomic():
        rx_request = _pending_request(rx_request)
        _approving_vet(rx_request.clinic, actor)
        rx_request.status = RxRequest.Status.DECLINED
        rx_request.decided_at = timezone.now()
        rx_request.decided_by = actor
        rx_request.decline_reason = reason.strip()[:300]
        rx_request.owner_message = owner_message.strip()
        rx_request.save(
            update_fields=[
                "status",
                "decided_at",
                "decided_by",
                "decline_reason",
                "owner_message",
            ]
        )
        audit_log(
            action="rx_request.declined",
            actor=actor,
            request=request,
            clinic=rx_request.clinic,
            obj=rx_request,
            after={"reason": rx_request.decline_reason},
        )
        _email_owner(rx_request, "rx_request_declined")
    return rx_request


def rx_request_note_add(
    *, rx_request: RxRequest, actor: Any, text: str, request: HttpRequest | None = None
) -> RxRequestNote:
    """An internal note for the clinic (never sent to the owner)."""
    if not text.strip():
        raise PrescriptionError("The note is empty.")
    with transaction.atomic():
        note = RxRequestNote.objects.create(request=rx_request, author=actor, text=text.strip())
        audit_log(
            action="rx_request.note_added",
            actor=actor,
            request=request,
            clinic=rx_request.clinic,
            obj=rx_request,
            after={"note": note.pk},
        )
    return note


def _clinic_decision_makers(clinic: Clinic) -> list[str]:
    """Who hears about waiting requests: the clinic's address, else its vets'."""
    if clinic.email:
        return [clinic.email]
    return sorted(
        {
            email
            for email in Membership.objects.filter(clinic=clinic, role=Role.VET).values_list(
                "user__email", flat=True
            )
            if email
        }
    )


def rx_requests_expire_and_remind(*, now: dt.datetime | None = None) -> tuple[int, int]:
    """Remind each clinic once about requests waiting 38 days; expire those at 45 days.
    Returns (reminded, expired)."""
    now = now or timezone.now()
    expired = 0
    for rx_request in RxRequest.objects.filter(
        status=RxRequest.Status.PENDING, expires_at__lte=now
    ).select_related("clinic"):
        with transaction.atomic():
            if RxRequest.objects.filter(pk=rx_request.pk, status=RxRequest.Status.PENDING).update(
                status=RxRequest.Status.EXPIRED, decided_at=now
            ):
                expired += 1
                audit_log(action="rx_request.expired", actor_label="system", obj=rx_request)
    reminded = 0
    due = RxRequest.objects.filter(
        status=RxRequest.Status.PENDING,
        reminder_sent_at__isnull=True,
        created_at__lte=now - RX_REQUEST_REMINDER_AFTER,
    ).select_related("clinic", "patient", "product")
    by_clinic: dict[int, list[RxRequest]] = {}
    for rx_request in due:
        by_clinic.setdefault(rx_request.clinic_id, []).append(rx_request)
    for requests_ in by_clinic.values():
        clinic = requests_[0].clinic
        recipients = _clinic_decision_makers(clinic)
        if not recipients:
            continue  # kept due: sent once the clinic has an address or a vet with one
        # The claim and the email in one transaction: a send that fails leaves them due.
        with transaction.atomic():
            claimed = [
                r
                for r in requests_
                if RxRequest.objects.filter(pk=r.pk, reminder_sent_at__isnull=True).update(
                    reminder_sent_at=now
                )
            ]
            if not claimed:
                continue
            subject, body = render_email(
                "rx_request_reminder",
                {"clinic": clinic, "requests": claimed, "site_url": settings.SITE_URL.rstrip("/")},
            )
            EmailMessage(subject=subject, body=body, to=recipients).send()
        reminded += len(claimed)
    return reminded, expired
