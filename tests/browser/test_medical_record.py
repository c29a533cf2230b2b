"""Staff click through what issue 21 added: recording a return from the order page (seen on the
prescription page too), and confirming a pending address change on the new-order page."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from records.models import ManualUpdate, Patient
from tests.browser.conftest import log_in, shot
from tests.conftest import World
from tests.factories import ClientFactory, PatientFactory
from tests.prescriptions.conftest import Catalogue, rx
from tests.prescriptions.conftest import catalogue as catalogue  # the fixture
from tests.prescriptions.conftest import ezyvet_clinic as ezyvet_clinic  # the fixture
from tests.prescriptions.conftest import site as site  # the fixture
from tests.prescriptions.writeback import ship

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pet(world: World) -> Patient:
    owner = ClientFactory(
        clinic=world.a.clinic,
        first_name="Dana",
        last_name="Whitfield",
        address_line1="12 Alder St",
        city="Portland",
        postcode="97205",
    )
    return PatientFactory(client=owner, name="Biscuit")


def test_staff_record_a_return_from_the_order_page(
    world: World, page: Any, pet: Patient, catalogue: Catalogue
) -> None:
    prescription = rx(world.a, pet, catalogue.carprofen)
    order = ship(world.a, prescription)

    log_in(page, world.a.staff.username)
    page.goto(order.get_absolute_url())
    page.get_by_text("Record a return…").click()
    form = page.get_by_test_id("return-form")
    form.get_by_label("Why did it come back?").select_option("not_delivered")
    form.get_by_label("Note").fill("Carrier returned it: address unknown")
    shot(page, "order-return-form")
    form.get_by_role("button", name="Record the return").click()

    expect(page.get_by_role("status")).to_contain_text("The whole shipment of")
    expect(page.get_by_test_id("order-status")).to_have_text("Returned")
    returned = page.get_by_test_id("shipment-return")
    expect(returned).to_contain_text("Never reached the owner")
    expect(returned).to_contain_text("30 of 30")
    shot(page, "order-returned")

    page.get_by_role("link", name=prescription.number).first.click()
    expect(page.get_by_test_id("rx-return")).to_contain_text("came back on")
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_staff_accept_a_pending_address_on_the_new_order_page(
    world: World, page: Any, pet: Patient
) -> None:
    ManualUpdate.objects.create(
        clinic=world.a.clinic,
        client=pet.client,
        kind=ManualUpdate.Kind.CLIENT_ADDRESS,
        current={"line1": "12 Alder St", "city": "Portland", "postcode": "97205"},
        proposed={"line1": "9 New Rd", "city": "Salem", "postcode": "97301"},
    )

    log_in(page, world.a.staff.username)
    page.goto(f"/c/alder/orders/new/?patient={pet.pk}")
    confirm = page.get_by_test_id("shipping-confirmation")
    expect(confirm).to_contain_text("9 New Rd")
    shot(page, "order-new-pending-address")
    confirm.get_by_role("button", name="Accept the PIMS's client address").click()

    expect(page.get_by_test_id("shipping-confirmation")).to_have_count(0)
    expect(page.get_by_role("heading", name="New order for Biscuit")).to_be_visible()
    expect(page.locator(".pagehead")).to_contain_text("9 New Rd")
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_a_clinic_admin_picks_a_vets_ezyvet_user(
    world: World, page: Any, site, ezyvet_clinic
) -> None:
    from clinics.models import Membership, Role
    from tests.factories import UserFactory

    admin = UserFactory(username="alder-admin")
    Membership.objects.create(user=admin, clinic=world.a.clinic, role=Role.ADMIN)
    vet_contacts = {c["id"] for c in site.records("contact") if c.get("is_vet") == "1"}
    users = [u for u in site.records("user") if str(u["contact_id"]) in vet_contacts]
    target = next(u for u in users if u["id"] != world.a.vet.pims_user_id)

    log_in(page, admin.username)
    page.goto("/c/alder/integration/")
    page.get_by_test_id("prescribers-link").click()
    row = page.get_by_test_id(f"prescriber-{world.a.vet.pk}")
    row.get_by_label(f"PIMS user of {world.a.vet}").select_option(target["id"])
    shot(page, "prescribers")
    row.get_by_role("button", name="Save").click()

    expect(page.get_by_role("status")).to_contain_text(f"is now PIMS user {target['id']}")
    world.a.vet.refresh_from_db()
    assert world.a.vet.pims_user_id == target["id"]
    assert page.console_errors == []  # type: ignore[attr-defined]
