"""Pet owners' Rx requests: a vet approves (sent to the PIMS only once paid) or declines with
a reason; a request waits at most 45 days, and the clinic is reminded once, at day 38."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail

from prescriptions.models import Prescription, RxRequest, WritebackItem
from prescriptions.services import (
    LineSpec,
    PrescriptionError,
    order_place,
    prescription_mark_paid,
    rx_request_approve,
    rx_request_decline,
    rx_request_submit,
    rx_requests_expire_and_remind,
)
from tests.conftest import World
from tests.prescriptions.writeback import calls, clock_at, ezyvet_items


@pytest.fixture
def request_for(world: World, catalogue):
    def submit(patient, product=None, quantity: int = 30) -> RxRequest:
        return rx_request_submit(
            clinic=patient.clinic,
            patient=patient,
            product=product or catalogue.carprofen,
            quantity=quantity,
            owner_note="She is nearly out",
        )

    return submit


def approve(world_clinic, rx_request, **kw) -> Prescription:
    return rx_request_approve(
        rx_request=rx_request,
        actor=world_clinic.vet_user,
        instructions=kw.pop("instructions", "One daily with food"),
        **kw,
    )


def test_an_approved_request_is_sent_to_ezyvet_only_once_paid(
    world: World, site, ezy_pet, request_for, django_capture_on_commit_callbacks
) -> None:
    rx_request = request_for(ezy_pet)

    with django_capture_on_commit_callbacks(execute=True):
        prescription = approve(world.a, rx_request, owner_message="Give it with food.")

    rx_request.refresh_from_db()
    assert rx_request.status == RxRequest.Status.APPROVED
    assert rx_request.prescription == prescription
    assert (prescription.state, prescription.source) == ("approved", "request")
    assert prescription.vet == world.a.vet
    assert not WritebackItem.objects.exists()
    assert calls(site, "POST") == []
    (email,) = mail.outbox
    assert email.to == [ezy_pet.client.email]
    assert "was approved" in email.subject
    assert "Give it with food." in email.body
    with pytest.raises(PrescriptionError, match="is not paid yet"):
        order_place(
            clinic=world.a.clinic,
            patient=ezy_pet,
            lines=[LineSpec(prescription.items.get().product, 30, prescription.items.get())],
            actor=world.a.staff,
        )

    with django_capture_on_commit_callbacks(execute=True):
        prescription_mark_paid(prescription=prescription, actor=world.a.staff)

    item = ezyvet_items(site, prescription)["CARP-75"]
    assert item["status"] == "PENDING"
    assert len(calls(site, "POST")) == 1
    record = site.records("externalprescription")[0]
    assert record["prescribing_vet_user_id"] == world.a.vet.pims_user_id
    assert WritebackItem.objects.get().status == WritebackItem.Status.DELIVERED


def test_a_request_cannot_be_paid_twice(world: World, site, ezy_pet, request_for) -> None:
    prescription = approve(world.a, request_for(ezy_pet))
    prescription_mark_paid(prescription=prescription, actor=world.a.staff)

    with pytest.raises(PrescriptionError, match="already paid"):
        prescription_mark_paid(prescription=prescription, actor=world.a.staff)
    assert WritebackItem.objects.count() == 1


def test_a_vet_may_approve_with_changes(world: World, site, ezy_pet, request_for, catalogue):
    rx_request = request_for(ezy_pet, quantity=90)

    prescription = approve(world.a, rx_request, product=catalogue.apoquel, quantity=30, refills=1)

    item = prescription.items.get()
    assert (item.product, item.quantity, item.refills) == (catalogue.apoquel, 30, 1)


def test_staff_can_neither_approve_nor_decline_a_request(world: World, ezy_pet, request_for):
    rx_request = request_for(ezy_pet)

    with pytest.raises(PrescriptionError, match="Only a vet of this clinic"):
        rx_request_approve(rx_request=rx_request, actor=world.a.staff, instructions="One daily")
    with pytest.raises(PrescriptionError, match="Only a vet of this clinic"):
        rx_request_decline(rx_request=rx_request, actor=world.a.staff, reason="No exam")

    rx_request.refresh_from_db()
    assert rx_request.status == RxRequest.Status.PENDING
    assert not Prescription.objects.exists()


def test_a_decline_keeps_the_reason_and_tells_the_owner(
    world: World, ezy_pet, request_for, django_capture_on_commit_callbacks
) -> None:
    rx_request = request_for(ezy_pet)

    with django_capture_on_commit_callbacks(execute=True):
        rx_request_decline(
            rx_request=rx_request,
            actor=world.a.vet_user,
            reason="Not examined in the last 12 months",
            owner_message="Please book a check-up first.",
        )

    rx_request.refresh_from_db()
    assert rx_request.status == RxRequest.Status.DECLINED
    assert rx_request.decline_reason == "Not examined in the last 12 months"
    assert (rx_request.decided_by, rx_request.prescription) == (world.a.vet_user, None)
    assert rx_request.decided_at is not None
    (email,) = mail.outbox
    assert email.to == [ezy_pet.client.email]
    assert "Please book a check-up first." in email.body
    assert not Prescription.objects.exists()
    with pytest.raises(PrescriptionError, match="already handled"):
        approve(world.a, rx_request)


def test_a_decline_needs_a_reason(world: World, ezy_pet, request_for) -> None:
    rx_request = request_for(ezy_pet)

    with pytest.raises(PrescriptionError, match="Give the reason"):
        rx_request_decline(rx_request=rx_request, actor=world.a.vet_user, reason="  ")

    rx_request.refresh_from_db()
    assert rx_request.status == RxRequest.Status.PENDING


def test_a_request_expires_after_45_days(world: World, ezy_pet, request_for) -> None:
    rx_request = request_for(ezy_pet)
    made = rx_request.created_at

    assert rx_requests_expire_and_remind(now=made + dt.timedelta(days=44, hours=23))[1] == 0
    rx_request.refresh_from_db()
    assert rx_request.status == RxRequest.Status.PENDING

    assert rx_requests_expire_and_remind(now=made + dt.timedelta(days=45))[1] == 1
    rx_request.refresh_from_db()
    assert rx_request.status == RxRequest.Status.EXPIRED
    with pytest.raises(PrescriptionError, match="already handled"):
        approve(world.a, rx_request)
    assert not Prescription.objects.exists()


def test_a_request_past_45_days_cannot_be_approved_before_the_sweep(
    world: World, ezy_pet, request_for
) -> None:
    rx_request = request_for(ezy_pet)

    with (
        clock_at(rx_request.created_at + dt.timedelta(days=45, minutes=1)),
        pytest.raises(PrescriptionError, match="expired"),
    ):
        approve(world.a, rx_request)

    assert not Prescription.objects.exists()


def test_the_clinic_is_reminded_once_at_day_38(world: World, ezy_pet, request_for) -> None:
    world.a.clinic.email = "frontdesk@alder.example"
    world.a.clinic.save()
    rx_request = request_for(ezy_pet)
    made = rx_request.created_at

    assert rx_requests_expire_and_remind(now=made + dt.timedelta(days=37, hours=23)) == (0, 0)
    assert mail.outbox == []

    assert rx_requests_expire_and_remind(now=made + dt.timedelta(days=38)) == (1, 0)
    (email,) = mail.outbox
    assert email.to == ["frontdesk@alder.example"]
    assert "1 Rx request expires in a week" in email.subject
    assert ezy_pet.name in email.body and "Carprofen 75 mg chewable" in email.body

    assert rx_requests_expire_and_remind(now=made + dt.timedelta(days=39)) == (0, 0)
    assert rx_requests_expire_and_remind(now=made + dt.timedelta(days=44)) == (0, 0)
    assert len(mail.outbox) == 1
    rx_request.refresh_from_db()
    assert rx_request.reminder_sent_at == made + dt.timedelta(days=38)


def test_a_handled_request_is_not_reminded(world: World, ezy_pet, request_for) -> None:
    world.a.clinic.email = "frontdesk@alder.example"
    world.a.clinic.save()
    rx_request = request_for(ezy_pet)
    approve(world.a, rx_request)
    mail.outbox.clear()

    assert rx_requests_expire_and_remind(now=rx_request.created_at + dt.timedelta(days=40)) == (
        0,
        0,
    )
    assert mail.outbox == []


def test_without_a_clinic_address_the_reminder_goes_to_the_vets(
    world: World, ezy_pet, request_for
) -> None:
    world.a.clinic.email = ""
    world.a.clinic.save()
    rx_request = request_for(ezy_pet)

    assert rx_requests_expire_and_remind(now=rx_request.created_at + dt.timedelta(days=38)) == (
        1,
        0,
    )

    (email,) = mail.outbox
    assert email.to == [world.a.vet_user.email]


def test_a_renamed_unpaid_request_still_waits_for_payment(
    world: World, site, ezy_pet, request_for, django_capture_on_commit_callbacks
) -> None:
    from prescriptions.services import prescription_approve
    from records.services import patient_rename

    requested = approve(world.a, request_for(ezy_pet))
    patient_rename(
        patient=ezy_pet, name="Maple", reason="New family", same_pet=True, actor=world.a.staff
    )
    draft = requested.replaced_by

    with django_capture_on_commit_callbacks(execute=True):
        prescription_approve(prescription=draft, actor=world.a.vet_user)

    draft.refresh_from_db()
    assert draft.needs_payment and draft.paid_at is None
    assert not WritebackItem.objects.filter(prescription=draft).exists()
    assert site.records("externalprescription") == []
