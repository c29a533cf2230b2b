"""The dashboard and the record pages' prescription panels, and forms sent twice or with
numbers too big to store."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from prescriptions.models import (
    Autoship,
    Channel,
    Order,
    Prescription,
)
from prescriptions.services import LineSpec, order_hold, order_place, rx_request_submit
from records.models import Patient
from tests.conftest import World, login
from tests.factories import ClientFactory, PatientFactory
from tests.prescriptions.conftest import Catalogue, rx
from tests.prescriptions.pages import (
    action_url,
    new_rx_data,
    request_for,
    text,
    url,
)

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
