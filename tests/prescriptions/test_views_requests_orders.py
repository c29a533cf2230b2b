"""The clinic's Rx-request and order pages: the queue, a vet's decisions, orders from
placing to shipping."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape
from typing import Any

from django.core import mail
from django.urls import reverse
from django.utils import timezone

from prescriptions.models import (
    Channel,
    ItemStatus,
    Order,
    RxRequest,
    RxRequestNote,
)
from prescriptions.services import LineSpec, order_hold, order_place
from records.models import Patient
from tests.conftest import World, login
from tests.factories import ClientFactory, PatientFactory
from tests.prescriptions.conftest import Catalogue, rx
from tests.prescriptions.pages import (
    messages_of,
    request_for,
    text,
    url,
)
from tests.prescriptions.writeback import clock_at

# --- Rx requests -----------------------------------------------------------------------------


def test_the_request_queue_puts_waiting_first_soonest_to_expire_on_top(
    world: World, pet: Patient, other_pet: Patient, catalogue: Catalogue
) -> None:
    older = request_for(world, pet, catalogue, product=catalogue.carprofen)
    RxRequest.objects.filter(pk=older.pk).update(
        created_at=timezone.now() - dt.timedelta(days=40),
        expires_at=timezone.now() + dt.timedelta(days=5, hours=1),
        reminder_sent_at=timezone.now() - dt.timedelta(days=2),
    )
    newer = request_for(world, other_pet, catalogue)
    declined = request_for(world, pet, catalogue, product=catalogue.renal_diet)
    RxRequest.objects.filter(pk=declined.pk).update(
        status=RxRequest.Status.DECLINED, decided_at=timezone.now()
    )
    staff = login(world.a.staff)
    response = staff.get(url("rx-request-list", world.a))
    rows = re.findall(r'data-testid="request-row">(.*?)</tr>', response.content.decode(), re.S)
    assert len(rows) == 3
    # Days are counted at the clinic: how many of its calendar days until the request expires.
    left = (world.a.clinic.localdate(timezone.now() + dt.timedelta(days=5, hours=1))
            - world.a.clinic.localdate()).days  # fmt: skip
    assert "Carprofen" in rows[0] and f"in {left} days" in rows[0] and "reminder sent" in rows[0]
    assert "Apoquel" in rows[1] and "in 45 days" in rows[1] and "reminder sent" not in rows[1]
    assert "Renal" in rows[2] and "Declined" in rows[2]
    assert "2 waiting for a vet." in text(response)

    page = text(staff.get(url("rx-request-list", world.a) + "?status=declined"))
    assert "Renal" in page and "Apoquel" not in page
    page = text(staff.get(url("rx-request-list", world.a) + "?q=pickle"))
    assert "Apoquel" in page and "Carprofen" not in page
    page = text(staff.get(url("rx-request-list", world.a) + "?status=expired"))
    assert "No requests match among “Expired”" in page
    assert newer.pk


def test_staff_see_why_they_cannot_decide_and_cannot_by_posting(
    world: World, pet: Patient, catalogue: Catalogue
) -> None:
    rx_request = request_for(world, pet, catalogue)
    staff = login(world.a.staff)
    address = url("rx-request-detail", world.a, request_id=rx_request.pk)
    page = text(staff.get(address))
    assert "He scratches all night" in page
    assert "Only a vet of the clinic can approve or decline" in page
    assert "Decline the request" not in page

    response = staff.post(address, {"action": "decline", "reason": "Needs an exam"}, follow=True)
    assert "Only a vet of this clinic can approve" in " ".join(messages_of(response))
    rx_request.refresh_from_db()
    assert rx_request.status == RxRequest.Status.PENDING
    assert not mail.outbox


def test_the_vets_decision_box_says_where_the_owner_is_emailed(
    world: World, pet: Patient, catalogue: Catalogue
) -> None:
    emailed = request_for(world, pet, catalogue)
    address = url("rx-request-detail", world.a, request_id=emailed.pk)
    page = text(login(world.a.vet_user).get(address))
    assert "The owner is emailed your decision and your note at dana@example.org." in page
    assert "not emailed" not in page


def test_the_vets_decision_box_says_an_owner_without_email_is_not_emailed(
    world: World, catalogue: Catalogue
) -> None:
    vet = login(world.a.vet_user)
    no_email = PatientFactory(client=ClientFactory(clinic=world.a.clinic, email=""), name="Duke")
    unreachable = request_for(world, no_email, catalogue)
    page = text(vet.get(url("rx-request-detail", world.a, request_id=unreachable.pk)))
    assert "The owner is emailed" not in page
    assert (
        "The owner has no email address, so they are not emailed your decision or your note:"
        " tell them by phone." in page
    )


def test_a_vet_declines_with_a_reason_and_the_owner_is_emailed(
    world: World, pet: Patient, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    rx_request = request_for(world, pet, catalogue)
    vet = login(world.a.vet_user)
    address = url("rx-request-detail", world.a, request_id=rx_request.pk)

    response = vet.post(address, {"action": "decline", "reason": ""})
    assert "Give the reason for declining." in text(response)
    rx_request.refresh_from_db()
    assert rx_request.status == RxRequest.Status.PENDING

    with django_capture_on_commit_callbacks(execute=True):
        with_mail = vet.post(
            address,
            {
                "action": "decline",
                "reason": "Needs an exam first",
                "owner_message": "Please book a check-up for Biscuit.",
            },
            follow=True,
        )
    rx_request.refresh_from_db()
    assert rx_request.status == RxRequest.Status.DECLINED
    assert rx_request.decline_reason == "Needs an exam first"
    assert rx_request.decided_by == world.a.vet_user
    [email] = mail.outbox
    assert email.to == ["dana@example.org"]
    assert "Please book a check-up for Biscuit." in email.body
    page = text(with_mail)
    assert "Declined. The owner was emailed at dana@example.org." in page
    assert "Needs an exam first" in page and "Decline the request" not in page


def test_a_vet_approves_a_request_as_asked_or_with_changes(
    world: World,
    pet: Patient,
    other_pet: Patient,
    catalogue: Catalogue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    vet = login(world.a.vet_user)
    asked = request_for(world, pet, catalogue)
    address = url("rx-request-detail", world.a, request_id=asked.pk)
    page = text(vet.post(address, {"action": "approve", "variant": "asked", "refills": "0"}))
    assert "Give the instructions: they go on the label." in page
    with django_capture_on_commit_callbacks(execute=True):
        response = vet.post(
            address,
            {"action": "approve", "variant": "asked", "refills": "2", "instructions": "Once daily"},
            follow=True,
        )
    asked.refresh_from_db()
    assert asked.status == RxRequest.Status.APPROVED
    item = asked.prescription.items.get()
    assert (item.product, item.quantity, item.refills) == (catalogue.apoquel, 30, 2)
    assert f"Approved as {asked.prescription.number}" in text(response)

    changed = request_for(world, other_pet, catalogue)
    with django_capture_on_commit_callbacks(execute=True):
        vet.post(
            url("rx-request-detail", world.a, request_id=changed.pk),
            {
                "action": "approve",
                "variant": "changes",
                "product": str(catalogue.carprofen.pk),
                "quantity": "14",
                "refills": "0",
                "instructions": "Half a tablet daily",
            },
        )
    changed.refresh_from_db()
    item = changed.prescription.items.get()
    assert (item.product, item.quantity, item.instructions) == (
        catalogue.carprofen,
        14,
        "Half a tablet daily",
    )
    assert [m.to for m in mail.outbox] == [["dana@example.org"], [other_pet.client.email]]
    assert "was approved" in mail.outbox[0].subject


def test_internal_notes_are_added_and_listed(
    world: World, pet: Patient, catalogue: Catalogue
) -> None:
    rx_request = request_for(world, pet, catalogue)
    address = url("rx-request-detail", world.a, request_id=rx_request.pk)
    staff = login(world.a.staff)
    assert "The note is empty." in text(staff.post(address, {"action": "note", "text": " "}))
    response = staff.post(
        address, {"action": "note", "text": "Called the owner, left a message"}, follow=True
    )
    assert RxRequestNote.objects.get().author == world.a.staff
    page = text(response)
    assert "Called the owner, left a message" in page and "Internal note added" in page


# --- orders ----------------------------------------------------------------------------------


def test_a_new_order_offers_only_the_pets_open_approved_items(
    world: World, pet: Patient, other_pet: Patient, catalogue: Catalogue
) -> None:
    approved = rx(world.a, pet, catalogue.carprofen)
    draft = rx(world.a, pet, catalogue.apoquel, approve=False)
    someone_elses = rx(world.a, other_pet, catalogue.renal_diet)
    staff = login(world.a.staff)
    address = url("order-new", world.a) + f"?patient={pet.pk}"
    html = staff.get(address).content.decode()
    assert f"{approved.number} · Carprofen 75 mg chewable — 90 left" in unescape(html)
    assert draft.number not in html and someone_elses.number not in html

    item = approved.items.get()
    data = {
        "channel": Channel.PORTAL,
        "lines-TOTAL_FORMS": "5",
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "5",
        "lines-0-prescription_item": str(item.pk),
        "lines-0-quantity": "30",
        "lines-1-product": str(catalogue.dasuquin.pk),
        "lines-1-quantity": "60",
    }
    # Another pet's item is not a choice.
    bad = {**data, "lines-0-prescription_item": str(someone_elses.items.get().pk)}
    assert "Select a valid choice" in text(staff.post(address, bad))
    # A prescription product without a prescription item is refused with the service's words.
    bad = {
        **data,
        "lines-0-prescription_item": "",
        "lines-0-product": str(catalogue.apoquel.pk),
    }
    assert "Apoquel 16 mg needs a prescription" in text(staff.post(address, bad))
    assert not Order.objects.exists()

    response = staff.post(address, data, follow=True)
    order = Order.objects.get()
    assert [(line.product, line.prescription_item) for line in order.lines.order_by("pk")] == [
        (catalogue.carprofen, item),
        (catalogue.dasuquin, None),
    ]
    assert f"{order.number} placed for Biscuit." in text(response)


def test_the_order_page_says_which_lines_are_written_back(
    world: World, pet: Patient, catalogue: Catalogue
) -> None:
    world.a.clinic.writeback_enabled = True
    world.a.clinic.save()
    prescription = rx(world.a, pet, catalogue.carprofen)
    order = order_place(
        clinic=world.a.clinic,
        patient=pet,
        lines=[
            LineSpec(catalogue.carprofen, 30, prescription.items.get()),
            LineSpec(catalogue.dasuquin, 10),
        ],
        actor=world.a.staff,
    )
    page = text(login(world.a.staff).get(order.get_absolute_url()))
    assert "A prescription item ordered via the portal or the store." in page
    assert "An OTC product outside a treatment plan is not written back." in page


def test_shipping_an_order_marks_it_shipped_with_the_date(
    world: World, pet: Patient, catalogue: Catalogue
) -> None:
    with clock_at(timezone.now() - dt.timedelta(days=3)):  # approved before it shipped
        prescription = rx(world.a, pet, catalogue.carprofen)
    item = prescription.items.get()
    order = order_place(
        clinic=world.a.clinic,
        patient=pet,
        lines=[LineSpec(catalogue.carprofen, 30, item)],
        actor=world.a.staff,
    )
    staff = login(world.a.staff)
    page = text(staff.get(order.get_absolute_url()))
    today = world.a.clinic.localdate()  # the clinic's today, not the server's
    assert today.isoformat() in staff.get(order.get_absolute_url()).content.decode()
    assert "Mark shipped" in page

    tomorrow = today + dt.timedelta(days=1)
    response = staff.post(
        reverse("prescriptions:order-action", args=["alder", order.pk]),
        {"action": "ship", "shipped_on": tomorrow.isoformat()},
        follow=True,
    )
    assert "The ship date cannot be in the future." in " ".join(messages_of(response))

    shipped_on = today - dt.timedelta(days=1)
    response = staff.post(
        reverse("prescriptions:order-action", args=["alder", order.pk]),
        {
            "action": "ship",
            "shipped_on": shipped_on.isoformat(),
            "carrier": "UPS",
            "tracking_number": "1Z999",
        },
        follow=True,
    )
    order.refresh_from_db()
    item.refresh_from_db()
    assert (order.status, order.shipped_on, order.carrier) == ("shipped", shipped_on, "UPS")
    assert (item.status, item.dispensed_quantity) == (ItemStatus.CURRENT, 30)
    page = text(response)
    assert f"marked shipped on {shipped_on:%d %b %Y}" in page
    assert f"{shipped_on.day} {shipped_on:%b %Y} · UPS · tracking 1Z999" in page
    assert "Mark shipped" not in page


def test_an_order_is_held_released_and_cancelled(
    world: World, pet: Patient, catalogue: Catalogue
) -> None:
    order = order_place(
        clinic=world.a.clinic,
        patient=pet,
        lines=[LineSpec(catalogue.dasuquin, 10)],
        actor=world.a.staff,
    )
    staff = login(world.a.staff)
    action = reverse("prescriptions:order-action", args=["alder", order.pk])
    response = staff.post(action, {"action": "hold", "reason": ""}, follow=True)
    assert "Give the reason" in " ".join(messages_of(response))
    response = staff.post(action, {"action": "hold", "reason": "Address to confirm"}, follow=True)
    assert "On hold: Address to confirm" in text(response)
    assert "Mark shipped" not in text(response)
    response = staff.post(action, {"action": "release"}, follow=True)
    assert "is released and can ship" in text(response)
    response = staff.post(action, {"action": "cancel", "reason": "Not needed"}, follow=True)
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    page = text(response)
    assert "Cancelled" in page and "Not needed" in page


def test_the_order_list_filters_and_searches(
    world: World, pet: Patient, other_pet: Patient, catalogue: Catalogue
) -> None:
    placed = order_place(
        clinic=world.a.clinic,
        patient=pet,
        lines=[LineSpec(catalogue.dasuquin, 10)],
        actor=world.a.staff,
    )
    held = order_place(
        clinic=world.a.clinic,
        patient=other_pet,
        lines=[LineSpec(catalogue.dasuquin, 20)],
        actor=world.a.staff,
    )
    order_hold(order=held, actor=world.a.staff, reason="Card declined")
    staff = login(world.a.staff)
    list_url = url("order-list", world.a)
    page = text(staff.get(list_url))
    assert placed.number in page and held.number in page and "Card declined" in page
    page = text(staff.get(list_url + "?status=on_hold"))
    assert held.number in page and placed.number not in page
    page = text(staff.get(list_url + "?status=open"))
    assert held.number in page and placed.number in page
    page = text(staff.get(list_url + "?status=shipped"))
    assert "No orders match among “Shipped”" in page
    page = text(staff.get(list_url + f"?q={placed.number.lower()}"))
    assert placed.number in page and held.number not in page
    page = text(staff.get(list_url + "?q=quill"))
    assert held.number in page and placed.number not in page
    page = text(staff.get(list_url + f"?client={pet.client_id}"))
    assert placed.number in page and held.number not in page
