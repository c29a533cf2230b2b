"""Prescriptions: who may prescribe, writing, approving, discarding, payment, ending items.

Each operation owns its transaction, checks the rules (``prescriptions/rules.py``), writes the
audit row, and writes the WriteBack outbox row in the same transaction as the change.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from clinics.audit import audit_log
from clinics.models import Clinic, Membership, Role, Vet
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
from prescriptions.rules import TransitionError, check_end, end_status_for
from prescriptions.writeback import writeback_end_enqueue, writeback_prescribe_enqueue
from records.models import Patient

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
    today = clinic.localdate()
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
        replacement = Prescription.objects.filter(replaces=prescription).first()
        if replacement is not None:
            raise PrescriptionError(
                f"{prescription.number} was replaced by {replacement.number} after the rename: "
                "record the payment there."
            )
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
        targets = _items_to_end(prescription, statuses=statuses, items=items)
        now = timezone.now()
        ended = []
        for item in targets:
            new_status = _end_status(item, statuses.get(item.pk) or status, by_client=by_client)
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


def _items_to_end(
    prescription: Prescription,
    *,
    statuses: Mapping[int, str],
    items: Sequence[PrescriptionItem] | None,
) -> list[PrescriptionItem]:
    """The items to end, locked: those asked for (each must be on the prescription), or else
    every open one."""
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
    return targets


def _end_status(item: PrescriptionItem, asked: str | None, *, by_client: bool) -> str:
    """The status the item ends with: the one asked for, else the usual end; checked against
    ezyVet's rules."""
    try:
        new_status = asked or end_status_for(item.status, by_client=by_client)
        check_end(item.status, new_status)
    except TransitionError as exc:
        raise PrescriptionError(f"{item.product}: {exc}") from exc
    return new_status


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
