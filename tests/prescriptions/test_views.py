"""The clinic's prescription pages: what staff and vets see and do, what only a vet may do,
and that another clinic's objects stay out of sight."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.urls import reverse
from django.utils import timezone

from prescriptions.models import (
    Autoship,
    ItemStatus,
    Order,
    Prescription,
    RxRequest,
)
from prescriptions.services import LineSpec, order_place
from records.models import Patient
from tests.conftest import World, login
from tests.prescriptions.conftest import Catalogue, rx
from tests.prescriptions.pages import (
    action_url,
    messages_of,
    new_rx_data,
    request_for,
    rx_url,
    text,
    url,
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
