"""What records' hooks ask of prescriptions: a pet reported deceased puts its orders and
autoships on hold; a renamed pet is re-prescribed under its new name."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from clinics.audit import audit_log
from clinics.models import Vet
from prescriptions.models import (
    RENAME_END_PREFIX,
    Autoship,
    Order,
    Prescription,
    PrescriptionItem,
)
from prescriptions.services.prescribing import (
    ItemSpec,
    PrescriptionError,
    prescription_create,
    prescription_items_end,
)
from records.models import Patient
from records.services import ManualUpdateError


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
    why = f"{RENAME_END_PREFIX}{old_name} to {patient.name}: {reason}"[:300]
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
            expires_on=max(old.expires_on, old.clinic.localdate() + dt.timedelta(days=1)),
            notes=f"Re-prescribed after the rename from {old_name}: {reason}",
            source=Prescription.Source.RENAME,
            replaces=old,
        )
        # An owner's request that was not paid for stays unpaid under the new name.
        if old.needs_payment:
            new.needs_payment = True
            new.paid_at = old.paid_at
            new.save(update_fields=["needs_payment", "paid_at"])
