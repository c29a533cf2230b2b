"""Owners' Rx requests: submitted from the store, approved (a prescription) or declined by a
vet, internal notes, and the daily reminder and expiry."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from clinics.audit import audit_log
from clinics.emails import render_email
from clinics.models import Clinic, Membership, Role
from prescriptions.models import (
    RX_REQUEST_REMINDER_AFTER,
    Channel,
    Prescription,
    Product,
    RxRequest,
    RxRequestNote,
)
from prescriptions.services.prescribing import (
    ItemSpec,
    PrescriptionError,
    _approving_vet,
    _check_patient,
    prescription_create,
)
from records.models import Patient


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
    consult_ref: str = "",
    request: HttpRequest | None = None,
) -> Prescription:
    """A vet approves a request, as asked or with changes: it becomes an approved
    prescription (attached to ``consult_ref``, if any), sent to the PIMS once paid."""
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
            consult_ref=consult_ref,
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
