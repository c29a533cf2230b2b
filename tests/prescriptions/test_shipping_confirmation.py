"""Staff confirm the shipping name and address before an order: a change the PIMS sent and
staff have not decided is shown on the new-order page, to accept or keep there."""

from __future__ import annotations

import re

from django.urls import reverse

from records.models import ManualUpdate
from tests.conftest import World, login
from tests.factories import ClientFactory, PatientFactory


def _pending_address(client) -> ManualUpdate:
    return ManualUpdate.objects.create(
        clinic=client.clinic,
        client=client,
        kind=ManualUpdate.Kind.CLIENT_ADDRESS,
        current={"line1": client.address_line1, "city": client.city, "postcode": client.postcode},
        proposed={"line1": "9 New Rd", "city": "Salem", "postcode": "97301"},
    )


def test_the_order_page_shows_a_pending_address_change_to_accept(world: World) -> None:
    owner = ClientFactory(
        clinic=world.a.clinic, address_line1="12 Alder St", city="Portland", postcode="97205"
    )
    pet = PatientFactory(client=owner, name="Biscuit")
    update = _pending_address(owner)
    url = reverse("prescriptions:order-new", args=["alder"]) + f"?patient={pet.pk}"
    staff = login(world.a.staff)

    page = staff.get(url).content.decode()

    assert 'data-testid="shipping-confirmation"' in page
    assert "Confirm the shipping address first" in page
    assert "9 New Rd" in page and "12 Alder St" in page
    action = reverse("records:update-action", args=["alder", update.pk])
    assert action in page
    assert re.search(rf'name="next" value="[^"]*patient={pet.pk}"', page)

    back = staff.post(action, {"action": "accept", "next": url})

    assert back.status_code == 302 and back["Location"] == url
    owner.refresh_from_db()
    assert (owner.address_line1, owner.city, owner.postcode) == ("9 New Rd", "Salem", "97301")
    assert "shipping-confirmation" not in staff.get(url).content.decode()


def test_keeping_the_pharmacys_address_from_the_order_page(world: World) -> None:
    owner = ClientFactory(clinic=world.a.clinic, address_line1="12 Alder St", postcode="97205")
    pet = PatientFactory(client=owner, name="Biscuit")
    update = _pending_address(owner)
    url = reverse("prescriptions:order-new", args=["alder"]) + f"?patient={pet.pk}"
    staff = login(world.a.staff)

    staff.post(
        reverse("records:update-action", args=["alder", update.pk]),
        {"action": "dismiss", "reason": "Owner ships to work", "next": url},
    )

    owner.refresh_from_db()
    update.refresh_from_db()
    assert owner.address_line1 == "12 Alder St"
    assert update.status == ManualUpdate.Status.DISMISSED
    assert "shipping-confirmation" not in staff.get(url).content.decode()


def test_no_confirmation_without_a_pending_change(world: World) -> None:
    pet = PatientFactory(client=ClientFactory(clinic=world.a.clinic), name="Biscuit")
    url = reverse("prescriptions:order-new", args=["alder"]) + f"?patient={pet.pk}"

    assert "shipping-confirmation" not in login(world.a.staff).get(url).content.decode()
