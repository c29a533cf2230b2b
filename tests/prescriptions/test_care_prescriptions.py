"""Pet Owner Care finds the client by an order or prescription number the caller reads out,
in any clinic, and the client's page shows their prescriptions and orders."""

from __future__ import annotations

import re

from django.urls import reverse

from clinics.models import AuditEvent
from prescriptions.models import Order
from prescriptions.services import LineSpec, order_place, order_ship
from records.models import Client
from tests.conftest import World, login
from tests.factories import ClientFactory, PatientFactory
from tests.prescriptions.conftest import rx


def search(world: World, text: str) -> str:
    return login(world.care).get(reverse("care:search"), {"q": text}).content.decode()


def result_ids(page: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-testid="result-(\d+)"', page)]


def place(world_clinic, prescription) -> Order:
    item = prescription.items.get()
    return order_place(
        clinic=world_clinic.clinic,
        patient=prescription.patient,
        lines=[LineSpec(product=item.product, quantity=10, prescription_item=item)],
        actor=world_clinic.staff,
    )


def test_care_finds_the_client_by_order_number(world: World, catalogue) -> None:
    owner = ClientFactory(clinic=world.b.clinic, first_name="Rosa", last_name="Okafor")
    pet = PatientFactory(client=owner, name="Juniper")
    order = place(world.b, rx(world.b, pet, catalogue.carprofen))

    page = search(world, order.number)

    assert result_ids(page) == [owner.pk]
    assert f"order {order.number}" in page
    assert "Birch Animal Hospital" in page
    # The way callers read it out works too.
    assert result_ids(search(world, f"ord {order.pk}")) == [owner.pk]
    event = AuditEvent.objects.filter(action="care.search").order_by("id").first()
    assert event.after == {"query": order.number, "results": 1}


def test_care_finds_the_client_by_prescription_number(world: World, catalogue) -> None:
    owner = ClientFactory(clinic=world.a.clinic, first_name="Theo", last_name="Lindqvist")
    prescription = rx(world.a, PatientFactory(client=owner, name="Maple"), catalogue.apoquel)

    page = search(world, prescription.number.lower())

    assert result_ids(page) == [owner.pk]
    assert f"prescription {prescription.number}" in page


def test_an_unknown_number_finds_nobody_and_a_bare_number_is_not_an_order(
    world: World, catalogue
) -> None:
    owner = ClientFactory(clinic=world.a.clinic, postcode="97205")
    order = place(world.a, rx(world.a, PatientFactory(client=owner), catalogue.carprofen))

    missing = search(world, f"ORD-{order.pk + 1000:06d}")
    bare = search(world, str(order.pk))

    assert result_ids(missing) == []
    assert 'data-testid="no-results"' in missing
    assert f"order {order.number}" not in bare


def test_the_search_page_lists_the_number_lookups(world: World) -> None:
    page = search(world, "")
    assert "Order number (ORD-000123)" in page
    assert "Prescription number (RX-000123)" in page


def test_a_merged_pims_copy_leads_to_the_record_care_works_on(world: World, catalogue) -> None:
    customer = ClientFactory(clinic=world.a.clinic, first_name="Ada", last_name="Byrne")
    pims_copy = ClientFactory(clinic=world.a.clinic, first_name="Ada", last_name="Byrne")
    order = place(world.a, rx(world.a, PatientFactory(client=pims_copy), catalogue.carprofen))
    Client.objects.filter(pk=pims_copy.pk).update(merged_into=customer)

    assert result_ids(search(world, order.number)) == [customer.pk]


def test_the_care_client_page_shows_item_statuses_and_shipping(world: World, catalogue) -> None:
    owner = ClientFactory(clinic=world.a.clinic)
    prescription = rx(world.a, PatientFactory(client=owner, name="Olive"), catalogue.carprofen)
    order = order_ship(
        order=place(world.a, prescription),
        actor=world.a.staff,
        carrier="UPS",
        tracking_number="1Z999AA10123456784",
    )

    page = login(world.care).get(reverse("care:client", args=[owner.pk])).content.decode()

    panel = page.split('data-testid="panel-prescriptions"')[1]
    assert prescription.number in panel and "Carprofen 75 mg chewable" in panel
    assert "Current" in panel  # the item's status after the dispense
    assert order.number in panel and "Shipped" in panel and "1Z999AA10123456784" in panel
    # Pet Owner Care is no member of the clinic: no links into the clinic's pages.
    assert prescription.get_absolute_url() not in panel
