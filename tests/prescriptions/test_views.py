"""The clinic's prescription, Rx-request and order pages: what staff and vets see and do,
what only a vet may do, and that another clinic's objects stay out of sight."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape
from typing import Any

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from prescriptions.models import (
    Autoship,
    Channel,
    ItemStatus,
    Order,
    Prescription,
    RxRequest,
    RxRequestNote,
)
from prescriptions.services import LineSpec, order_hold, order_place, rx_request_submit
from records.models import Patient
from tests.conftest import World, login
from tests.factories import ClientFactory, PatientFactory
from tests.prescriptions.conftest import Catalogue, rx
from tests.prescriptions.writeback import clock_at


def text(response: Any) -> str:
    """The page as a person reads it: tags dropped, entities decoded, whitespace collapsed."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.fixture
def pet(world: World) -> Patient:
    owner = ClientFactory(
        clinic=world.a.clinic, first_name="Dana", last_name="Whitfield", email="dana@example.org"
    )
    return PatientFactory(client=owner, name="Biscuit")


@pytest.fixture
def other_pet(world: World) -> Patient:
    owner = ClientFactory(clinic=world.a.clinic, first_name="Omar", last_name="Quill")
    return PatientFactory(client=owner, name="Pickle")


def url(name: str, world_clinic: Any, **kwargs: Any) -> str:
    return reverse(
        f"prescriptions:{name}", kwargs={"clinic_slug": world_clinic.clinic.slug, **kwargs}
    )


def rx_url(prescription: Prescription) -> str:
    return prescription.get_absolute_url()


def action_url(prescription: Prescription) -> str:
    return reverse(
        "prescriptions:prescription-action", args=[prescription.clinic.slug, prescription.pk]
    )


def new_rx_data(world: World, catalogue: Catalogue, **extra: str) -> dict[str, str]:
    data = {
        "vet": str(world.a.vet.pk),
        "channel": Channel.PORTAL,
        "consult_ref": "C-77",
        "expires_on": (timezone.localdate() + dt.timedelta(days=180)).isoformat(),
        "notes": "",
        "items-TOTAL_FORMS": "5",
        "items-INITIAL_FORMS": "0",
        "items-MIN_NUM_FORMS": "0",
        "items-MAX_NUM_FORMS": "5",
        "items-0-product": str(catalogue.carprofen.pk),
        "items-0-quantity": "60",
        "items-0-refills": "2",
        "items-0-instructions": "One tablet twice daily with food",
    }
    for i in range(1, 5):
        data.update({f"items-{i}-quantity": "30", f"items-{i}-refills": "0"})
    data.update(extra)
    return data


def request_for(world: World, pet: Patient, catalogue: Catalogue, **kw: Any) -> RxRequest:
    return rx_request_submit(
        clinic=world.a.clinic,
        patient=pet,
        product=kw.pop("product", catalogue.apoquel),
        quantity=kw.pop("quantity", 30),
        owner_note=kw.pop("owner_note", "He scratches all night"),
    )


# --- tenancy ---------------------------------------------------------------------------------


def _a_objects(world: World, pet: Patient, catalogue: Catalogue) -> dict[str, Any]:
    prescription = rx(world.a, pet, catalogue.carprofen)
    order = order_place(
        clinic=world.a.clinic,
        patient=pet,
        lines=[LineSpec(catalogue.carprofen, 30, prescription.items.get())],
        actor=world.a.staff,
    )
    return {
        "prescription": prescription,
        "order": order,
        "rx_request": request_for(world, pet, catalogue),
    }


def test_a_user_of_another_clinic_gets_404_on_every_page(
    world: World, pet: Patient, catalogue: Catalogue
) -> None:
    objs = _a_objects(world, pet, catalogue)
    outsider = login(world.b.vet_user)
    urls = [
        url("prescription-list", world.a),
        url("prescription-new", world.a),
        url("prescription-new", world.a) + f"?patient={pet.pk}",
        url("prescription-detail", world.a, prescription_id=objs["prescription"].pk),
        url("prescription-action", world.a, prescription_id=objs["prescription"].pk),
        url("rx-request-list", world.a),
        url("rx-request-detail", world.a, request_id=objs["rx_request"].pk),
        url("order-list", world.a),
        url("order-new", world.a) + f"?patient={pet.pk}",
        url("order-detail", world.a, order_id=objs["order"].pk),
        url("order-action", world.a, order_id=objs["order"].pk),
    ]
    for address in urls:
        get, post = outsider.get(address), outsider.post(address, {"action": "approve"})
        assert {get.status_code, post.status_code} <= {404, 405}, address
        assert 404 in {get.status_code, post.status_code}, address


def test_another_clinics_objects_are_404_under_ones_own_clinic(
    world: World, pet: Patient, catalogue: Catalogue
) -> None:
    objs = _a_objects(world, pet, catalogue)
    draft = rx(world.a, pet, catalogue.apoquel, approve=False)
    member_of_b = login(world.b.vet_user)
    urls = [
        url("prescription-detail", world.b, prescription_id=objs["prescription"].pk),
        url("rx-request-detail", world.b, request_id=objs["rx_request"].pk),
        url("order-detail", world.b, order_id=objs["order"].pk),
        url("prescription-new", world.b) + f"?patient={pet.pk}",
        url("order-new", world.b) + f"?patient={pet.pk}",
        url("prescription-list", world.b) + f"?patient={pet.pk}",
        url("order-list", world.b) + f"?client={pet.client_id}",
    ]
    for address in urls:
        assert member_of_b.get(address).status_code == 404, address
    posts = [
        (url("prescription-action", world.b, prescription_id=draft.pk), {"action": "approve"}),
        (
            url("rx-request-detail", world.b, request_id=objs["rx_request"].pk),
            {"action": "decline", "reason": "No"},
        ),
        (
            url("order-action", world.b, order_id=objs["order"].pk),
            {"action": "cancel", "reason": "No"},
        ),
    ]
    for address, data in posts:
        assert member_of_b.post(address, data).status_code == 404, address
    draft.refresh_from_db()
    objs["rx_request"].refresh_from_db()
    objs["order"].refresh_from_db()
    assert draft.state == Prescription.State.DRAFT
    assert objs["rx_request"].status == RxRequest.Status.PENDING
    assert objs["order"].status == Order.Status.PLACED
    # And nothing of clinic A is listed in clinic B.
    assert "Biscuit" not in text(login(world.b.staff).get(url("prescription-list", world.b)))


# --- writing and approving prescriptions -------------------------------------------------------


def test_staff_draft_a_prescription_for_a_vet(
    world: World, pet: Patient, catalogue: Catalogue
) -> None:
    staff = login(world.a.staff)
    form = staff.get(url("prescription-new", world.a) + f"?patient={pet.pk}")
    page = text(form)
    assert "New prescription for Biscuit" in page and "Dana Whitfield" in page
    assert "You are saving a draft" in page and "Approve now" not in page

    response = staff.post(
        url("prescription-new", world.a) + f"?patient={pet.pk}",
        new_rx_data(world, catalogue),
        follow=True,
    )
    prescription = Prescription.objects.get()
    assert prescription.state == Prescription.State.DRAFT
    assert prescription.created_by == world.a.staff
    assert prescription.consult_ref == "C-77"
    item = prescription.items.get()
    assert (item.product, item.quantity, item.refills) == (catalogue.carprofen, 60, 2)
    page = text(response)
    assert f"{prescription.number} for Biscuit is saved as a draft" in page
    assert "Awaiting a vet" in page
    assert "Only a vet of the clinic can approve" in page
    assert f"Approve {prescription.number}" not in page


def test_the_pet_picker_finds_pets_by_pet_or_owner_name(
    world: World, pet: Patient, other_pet: Patient
) -> None:
    staff = login(world.a.staff)
    page = text(staff.get(url("prescription-new", world.a) + "?q=whitf"))
    assert "Prescribe for Biscuit" in page and "Pickle" not in page
    page = text(staff.get(url("order-new", world.a) + "?q=pick"))
    assert "Order for Pickle" in page and "Biscuit" not in page
    page = text(staff.get(url("prescription-new", world.a) + "?q=zzz"))
    assert "No pet or owner matches “zzz”" in page


def test_staff_cannot_approve_even_by_posting_it(
    world: World, pet: Patient, catalogue: Catalogue
) -> None:
    staff = login(world.a.staff)
    response = staff.post(
        url("prescription-new", world.a) + f"?patient={pet.pk}",
        new_rx_data(world, catalogue, approve="on"),
    )
    assert response.status_code == 200
    assert "Only a vet of this clinic can approve" in text(response)
    assert not Prescription.objects.exists()

    draft = rx(world.a, pet, catalogue.carprofen, approve=False)
    response = staff.post(action_url(draft), {"action": "approve"}, follow=True)
    assert "Only a vet of this clinic can approve" in " ".join(messages_of(response))
    draft.refresh_from_db()
    assert draft.state == Prescription.State.DRAFT and draft.approved_at is None
    assert "Approved by a vet" not in text(response)


def test_a_vet_approves_a_draft_from_its_page(
    world: World, pet: Patient, catalogue: Catalogue
) -> None:
    draft = rx(world.a, pet, catalogue.carprofen, approve=False)
    vet = login(world.a.vet_user)
    page = text(vet.get(rx_url(draft)))
    assert f"Approve {draft.number}" in page

    response = vet.post(action_url(draft), {"action": "approve"}, follow=True)
    draft.refresh_from_db()
    assert draft.state == Prescription.State.APPROVED
    assert draft.approved_by == world.a.vet_user
    page = text(response)
    assert f"{draft.number} is approved." in page
    assert "Awaiting a vet" not in page
    assert "Approved by a vet" in page  # the history
    assert "Pending" in page


def test_a_vet_can_write_and_approve_at_once(
    world: World, pet: Patient, catalogue: Catalogue
) -> None:
    vet = login(world.a.vet_user)
    assert "Approve now" in text(vet.get(url("prescription-new", world.a) + f"?patient={pet.pk}"))
    response = vet.post(
        url("prescription-new", world.a) + f"?patient={pet.pk}",
        new_rx_data(world, catalogue, approve="on"),
        follow=True,
    )
    prescription = Prescription.objects.get()
    assert prescription.state == Prescription.State.APPROVED
    assert f"{prescription.number} for Biscuit is approved" in text(response)


def test_the_form_shows_what_is_wrong(world: World, pet: Patient, catalogue: Catalogue) -> None:
    staff = login(world.a.staff)
    data = new_rx_data(world, catalogue, **{"items-0-instructions": ""})
    page = text(staff.post(url("prescription-new", world.a) + f"?patient={pet.pk}", data))
    assert "Give the instructions for this item." in page
    data = new_rx_data(
        world,
        catalogue,
        expires_on=(timezone.localdate() + dt.timedelta(days=500)).isoformat(),
    )
    page = text(staff.post(url("prescription-new", world.a) + f"?patient={pet.pk}", data))
    assert "A prescription is valid for at most a year." in page
    data = new_rx_data(world, catalogue, **{"items-0-product": ""})
    page = text(staff.post(url("prescription-new", world.a) + f"?patient={pet.pk}", data))
    assert "Choose the product for this row." in page
    empty = {
        **data,
        "items-0-quantity": "30",
        "items-0-refills": "0",
        "items-0-instructions": "",
    }
    page = text(staff.post(url("prescription-new", world.a) + f"?patient={pet.pk}", empty))
    assert "Add at least one item" in page
    assert not Prescription.objects.exists()


def test_a_draft_is_discarded_with_a_reason(
    world: World, pet: Patient, catalogue: Catalogue
) -> None:
    draft = rx(world.a, pet, catalogue.carprofen, approve=False)
    staff = login(world.a.staff)
    response = staff.post(action_url(draft), {"action": "discard", "reason": ""}, follow=True)
    assert "Give the reason" in " ".join(messages_of(response))
    response = staff.post(
        action_url(draft), {"action": "discard", "reason": "Wrong pet"}, follow=True
    )
    draft.refresh_from_db()
    assert draft.state == Prescription.State.VOID
    page = text(response)
    assert "Void (draft discarded)" in page and "Wrong pet" in page


def test_ending_items_offers_only_the_ends_the_rules_allow(
    world: World, pet: Patient, catalogue: Catalogue
) -> None:
    prescription = rx(world.a, pet, catalogue.carprofen, catalogue.apoquel)
    carprofen, apoquel = prescription.items.order_by("pk")
    order = order_place(
        clinic=world.a.clinic,
        patient=pet,
        lines=[LineSpec(catalogue.carprofen, 30, carprofen)],
        actor=world.a.staff,
    )
    staff = login(world.a.staff)
    staff.post(
        reverse("prescriptions:order-action", args=["alder", order.pk]),
        {"action": "ship", "shipped_on": world.a.clinic.localdate().isoformat()},
    )
    html = staff.get(rx_url(prescription)).content.decode()
    current = re.search(rf'name="end-{carprofen.pk}">(.*?)</select>', html, re.S)
    pending = re.search(rf'name="end-{apoquel.pk}">(.*?)</select>', html, re.S)
    assert current and pending
    assert "CANCELLED_DR" in current.group(1) and "DECLINED" not in current.group(1)
    assert "DECLINED_CLIENT" in pending.group(1) and "CANCELLED" not in pending.group(1)

    # A status the rules forbid is refused, and nothing changes.
    response = staff.post(
        action_url(prescription),
        {"action": "end", f"end-{apoquel.pk}": "CANCELLED_DR", "reason": "Owner stopped"},
        follow=True,
    )
    assert "Select a valid choice" in " ".join(messages_of(response))
    apoquel.refresh_from_db()
    assert apoquel.status == ItemStatus.PENDING

    response = staff.post(
        action_url(prescription),
        {
            "action": "end",
            f"end-{carprofen.pk}": "CANCELLED_CLIENT",
            f"end-{apoquel.pk}": "DECLINED_CLIENT",
            "reason": "Owner stopped the medication",
        },
        follow=True,
    )
    carprofen.refresh_from_db()
    apoquel.refresh_from_db()
    assert (carprofen.status, apoquel.status) == (
        ItemStatus.CANCELLED_CLIENT,
        ItemStatus.DECLINED_CLIENT,
    )
    page = text(response)
    assert "Cancelled by the owner" in page and "Declined by the owner" in page
    assert "Owner stopped the medication" in page
    assert "Every item has ended" in page


def test_payment_is_recorded_for_an_approved_request(
    world: World, pet: Patient, catalogue: Catalogue
) -> None:
    rx_request = request_for(world, pet, catalogue)
    vet = login(world.a.vet_user)
    vet.post(
        url("rx-request-detail", world.a, request_id=rx_request.pk),
        {"action": "approve", "variant": "asked", "refills": "1", "instructions": "Daily"},
    )
    prescription = Prescription.objects.get()
    page = text(vet.get(rx_url(prescription)))
    assert "Not paid yet" in page and "Record the owner's payment" in page
    assert "Request of" in page  # the link back to the request

    response = login(world.a.staff).post(action_url(prescription), {"action": "pay"}, follow=True)
    prescription.refresh_from_db()
    assert prescription.paid_at is not None
    page = text(response)
    assert f"Payment recorded for {prescription.number}" in page
    assert "Record the owner's payment" not in page

    clinic_rx = rx(world.a, pet, catalogue.carprofen)
    response = login(world.a.staff).post(action_url(clinic_rx), {"action": "pay"}, follow=True)
    assert "Only a prescription from an owner's Rx request" in " ".join(messages_of(response))


def test_an_autoship_is_started_for_an_item(
    world: World, pet: Patient, catalogue: Catalogue
) -> None:
    prescription = rx(world.a, pet, catalogue.carprofen)
    item = prescription.items.get()
    response = login(world.a.staff).post(
        action_url(prescription),
        {"action": "autoship", "item": str(item.pk), "interval_days": "28", "quantity": ""},
        follow=True,
    )
    autoship = Autoship.objects.get()
    assert (autoship.prescription_item, autoship.interval_days, autoship.quantity) == (
        item,
        28,
        30,
    )
    assert "Autoship started" in text(response) and "every 28 days" in text(response)

    response = login(world.a.staff).post(
        action_url(prescription),
        {"action": "autoship", "item": str(item.pk), "interval_days": "3"},
        follow=True,
    )
    assert "every 7 days at the most often" in " ".join(messages_of(response))
    assert Autoship.objects.count() == 1


def test_the_prescription_page_links_the_rename_both_ways_and_lists_writebacks(
    world: World, pet: Patient, catalogue: Catalogue
) -> None:
    old = rx(world.a, pet, catalogue.carprofen)
    new = rx(world.a, pet, catalogue.apoquel, approve=False, replaces=old, source="rename")
    staff = login(world.a.staff)
    page = text(staff.get(rx_url(old)))
    assert f"Replaced by {new.number}" in page
    page = text(staff.get(rx_url(new)))
    assert f"Replaces {old.number}" in page
    assert "Re-prescribed after a pet rename" in page
    # WriteBack is off for clinic A by default: the page says so.
    assert "WriteBack is off for this clinic" in text(staff.get(rx_url(old)))


def test_the_prescription_page_shows_its_writeback_rows(
    world: World, catalogue: Catalogue, agent_pet: Patient
) -> None:
    prescription = rx(world.b, agent_pet, catalogue.carprofen)
    order = order_place(
        clinic=world.b.clinic,
        patient=agent_pet,
        lines=[LineSpec(catalogue.carprofen, 30, prescription.items.get())],
        actor=world.b.staff,
    )
    staff = login(world.b.staff)
    staff.post(
        reverse("prescriptions:order-action", args=["birch", order.pk]),
        {"action": "ship", "shipped_on": world.b.clinic.localdate().isoformat()},
    )
    row = prescription.writebacks.get()
    html = staff.get(rx_url(prescription)).content.decode()
    assert reverse("prescriptions:writeback-detail", args=["birch", row.pk]) in html
    page = text(staff.get(rx_url(prescription)))
    assert "Dispense (shipment)" in page and "Agent writeback feed" in page


# --- the prescription list -------------------------------------------------------------------


def test_the_prescription_list_filters_and_searches(
    world: World, pet: Patient, other_pet: Patient, catalogue: Catalogue
) -> None:
    approved = rx(world.a, pet, catalogue.carprofen)
    draft = rx(world.a, other_pet, catalogue.apoquel, approve=False)
    staff = login(world.a.staff)
    list_url = url("prescription-list", world.a)

    page = text(staff.get(list_url))
    assert approved.number in page and draft.number in page
    assert page.index(draft.number) < page.index(approved.number)  # newest first
    assert "Carprofen 75 mg chewable" in page and "Pending" in page

    page = text(staff.get(list_url + "?state=draft"))
    assert draft.number in page and approved.number not in page
    page = text(staff.get(list_url + "?state=approved"))
    assert approved.number in page and draft.number not in page
    page = text(staff.get(list_url + "?state=open"))
    assert approved.number in page and draft.number in page
    page = text(staff.get(list_url + "?state=void"))
    assert "No prescriptions match among “Void (draft discarded)”" in page

    page = text(staff.get(list_url + f"?q={approved.number}"))
    assert approved.number in page and draft.number not in page
    page = text(staff.get(list_url + "?q=pickle"))
    assert draft.number in page and approved.number not in page
    page = text(staff.get(list_url + "?q=whitfield"))
    assert approved.number in page and draft.number not in page
    page = text(staff.get(list_url + "?q=apoquel"))
    assert draft.number in page and approved.number not in page
    page = text(staff.get(list_url + f"?patient={pet.pk}"))
    assert approved.number in page and draft.number not in page
    assert "Showing the prescriptions of Biscuit" in page


def test_the_prescription_list_answers_htmx_with_the_results_only(
    world: World, pet: Patient, catalogue: Catalogue
) -> None:
    prescription = rx(world.a, pet, catalogue.carprofen)
    response = login(world.a.staff).get(
        url("prescription-list", world.a) + "?q=biscuit",
        headers={"HX-Request": "true", "HX-Target": "prescription-results"},
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="prescription-results">')
    assert prescription.number in html and "<html" not in html


def test_empty_lists_say_what_will_appear(world: World) -> None:
    staff = login(world.a.staff)
    assert "No prescriptions yet." in text(staff.get(url("prescription-list", world.a)))
    assert "No Rx requests yet." in text(staff.get(url("rx-request-list", world.a)))
    assert "No orders yet." in text(staff.get(url("order-list", world.a)))
    assert "Type a pet's or owner's name" in text(staff.get(url("order-new", world.a)))


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


# --- the dashboard and the record pages ------------------------------------------------------


def test_the_dashboard_counts_what_waits_and_links_to_it(
    world: World, pet: Patient, catalogue: Catalogue
) -> None:
    rx(world.a, pet, catalogue.carprofen, approve=False)
    request_for(world, pet, catalogue)
    held = order_place(
        clinic=world.a.clinic,
        patient=pet,
        lines=[LineSpec(catalogue.dasuquin, 10)],
        actor=world.a.staff,
    )
    order_place(
        clinic=world.a.clinic,
        patient=pet,
        lines=[LineSpec(catalogue.dasuquin, 10)],
        actor=world.a.staff,
    )
    order_hold(order=held, actor=world.a.staff, reason="Card declined")
    response = login(world.a.staff).get(reverse("clinic-dashboard", args=["alder"]))
    html = response.content.decode()
    page = text(response)
    assert "1 draft prescription awaiting a vet" in page
    assert "1 Rx request waiting" in page
    assert "2 open orders" in page and "1 order on hold" in page
    for link in (
        "/c/alder/prescriptions/?state=draft",
        "/c/alder/rx-requests/?status=pending",
        "/c/alder/orders/?status=open",
        "/c/alder/orders/?status=on_hold",
    ):
        assert link in html
    assert "/c/alder/prescriptions/" in html and "/c/alder/orders/" in html  # the nav


def test_the_pet_page_shows_prescriptions_and_orders_with_links(
    world: World, pet: Patient, catalogue: Catalogue
) -> None:
    prescription = rx(world.a, pet, catalogue.carprofen)
    order = order_place(
        clinic=world.a.clinic,
        patient=pet,
        lines=[LineSpec(catalogue.carprofen, 30, prescription.items.get())],
        actor=world.a.staff,
    )
    staff = login(world.a.staff)
    response = staff.get(reverse("records:patient-detail", args=["alder", pet.pk]))
    html = response.content.decode()
    panel = html[html.index('data-testid="panel-prescriptions"') :]
    assert prescription.get_absolute_url() in panel and order.get_absolute_url() in panel
    assert f"/c/alder/prescriptions/new/?patient={pet.pk}" in panel
    assert f"/c/alder/orders/new/?patient={pet.pk}" in panel
    assert f"/c/alder/prescriptions/?patient={pet.pk}" in panel
    page = text(response)
    assert "Carprofen 75 mg chewable Pending 90 left" in page
    assert "Placed" in page

    response = staff.get(reverse("records:client-detail", args=["alder", pet.client_id]))
    assert f"/c/alder/orders/?client={pet.client_id}" in response.content.decode()


def test_an_empty_panel_says_so(world: World, pet: Patient) -> None:
    page = text(login(world.a.staff).get(reverse("records:patient-detail", args=["alder", pet.pk])))
    assert "No prescriptions yet." in page and "No orders yet." in page


def test_pet_owner_care_sees_the_panel_without_clinic_links(
    world: World, pet: Patient, catalogue: Catalogue
) -> None:
    prescription = rx(world.a, pet, catalogue.carprofen)
    response = login(world.care).get(reverse("care:client", args=[pet.client_id]))
    html = response.content.decode()
    panel = html[html.index('data-testid="panel-prescriptions"') :]
    assert prescription.number in panel and "Pending" in panel
    assert "/c/alder/" not in panel  # Care is no member of the clinic: those pages are 404s


def test_an_owner_without_email_is_to_be_told_by_phone(world: World, catalogue) -> None:
    from prescriptions.services import rx_request_submit

    owner = ClientFactory(clinic=world.a.clinic, email="")
    pet = PatientFactory(client=owner, name="Duke")
    rx_request = rx_request_submit(
        clinic=world.a.clinic, patient=pet, product=catalogue.carprofen, quantity=30
    )

    page = login(world.a.vet_user).post(
        reverse("prescriptions:rx-request-detail", args=["alder", rx_request.pk]),
        {"action": "decline", "reason": "Needs an exam first", "owner_message": ""},
        follow=True,
    )

    assert "The owner has no email address: tell them by phone." in page.content.decode()
    assert mail.outbox == []


def test_a_double_submitted_prescription_is_made_once(world: World, catalogue) -> None:
    pet = PatientFactory(client=ClientFactory(clinic=world.a.clinic), name="Biscuit")
    vet = login(world.a.vet_user)
    url = reverse("prescriptions:prescription-new", args=["alder"]) + f"?patient={pet.pk}"
    form = vet.get(url).context["form"]
    data = {
        "submission_id": str(form["submission_id"].initial),
        "vet": world.a.vet.pk,
        "channel": "portal",
        "expires_on": (timezone.localdate() + dt.timedelta(days=200)).isoformat(),
        "approve": "on",
        "items-TOTAL_FORMS": "1",
        "items-INITIAL_FORMS": "0",
        "items-0-product": catalogue.carprofen.pk,
        "items-0-quantity": "30",
        "items-0-refills": "1",
        "items-0-instructions": "One daily",
    }

    first = vet.post(url, data)
    second = vet.post(url, data)

    assert Prescription.objects.count() == 1
    assert first["Location"] == second["Location"] == Prescription.objects.get().get_absolute_url()


# A quantity no database integer column holds (PostgreSQL's stops at 2,147,483,647) is a form
# error, never a 500 or a prescription for a trillion tablets.
TOO_MANY = ["2147483648", "9" * 20]


@pytest.mark.parametrize("quantity", TOO_MANY)
def test_a_prescription_quantity_too_big_to_store_is_a_form_error(
    world: World, pet: Patient, catalogue: Catalogue, quantity: str
) -> None:
    vet = login(world.a.vet_user)
    address = url("prescription-new", world.a) + f"?patient={pet.pk}"
    response = vet.post(address, new_rx_data(world, catalogue, **{"items-0-quantity": quantity}))
    assert response.status_code == 200
    assert "less than or equal to" in text(response)
    assert not Prescription.objects.exists()


@pytest.mark.parametrize("quantity", TOO_MANY)
def test_an_order_or_autoship_quantity_too_big_to_store_is_a_form_error(
    world: World, pet: Patient, catalogue: Catalogue, quantity: str
) -> None:
    prescription = rx(world.a, pet, catalogue.carprofen)
    item = prescription.items.get()
    staff = login(world.a.staff)
    order = staff.post(
        url("order-new", world.a) + f"?patient={pet.pk}",
        {
            "channel": Channel.PORTAL,
            "lines-TOTAL_FORMS": "1",
            "lines-INITIAL_FORMS": "0",
            "lines-0-product": str(catalogue.dasuquin.pk),  # over the counter: no Rx to run out
            "lines-0-quantity": quantity,
        },
    )
    assert order.status_code == 200 and "less than or equal to" in text(order)
    assert not Order.objects.exists()
    autoship = staff.post(
        action_url(prescription),
        {"action": "autoship", "item": str(item.pk), "interval_days": "28", "quantity": quantity},
        follow=True,
    )
    assert autoship.status_code == 200 and "less than or equal to" in text(autoship)
    assert not Autoship.objects.exists()
