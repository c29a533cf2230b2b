"""A prescription replaced by a rename reads as replaced, not active; the rename is done by
keyboard alone."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from prescriptions.models import Prescription, Product, ProductKind
from prescriptions.services import ItemSpec, prescription_create
from tests.browser.conftest import log_in
from tests.browser.keyboard import tab_to
from tests.conftest import World
from tests.factories import ClientFactory, PatientFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_rename_by_keyboard_leaves_the_old_prescription_plainly_replaced(
    world: World, page: Any
) -> None:
    owner = ClientFactory(clinic=world.a.clinic)
    pet = PatientFactory(client=owner, name="Biscuit")
    product = Product.objects.create(
        sku="APOQ-16", name="Apoquel 16 mg", kind=ProductKind.RX_MEDICATION, price=Decimal("2.4")
    )
    old = prescription_create(
        clinic=world.a.clinic,
        patient=pet,
        vet=world.a.vet,
        items=[ItemSpec(product=product, quantity=30, refills=2, instructions="One daily")],
        actor=world.a.vet_user,
        approve=True,
    )
    # An owner's request, approved and not yet paid for.
    Prescription.objects.filter(pk=old.pk).update(needs_payment=True)

    log_in(page, world.a.staff.username)
    page.goto(f"/c/alder/pets/{pet.pk}/rename/")
    tab_to(page, "#id_name")
    page.keyboard.type("Clementine")
    tab_to(page, "#id_same_pet")
    page.keyboard.press("Space")
    tab_to(page, "#id_reason")
    page.keyboard.type("The owner renamed her after adoption")
    tab_to(page, "[data-testid=rename-form] button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/pets/{pet.pk}/")
    new = Prescription.objects.get(replaces=old)

    page.goto(old.get_absolute_url())
    assert page.get_by_test_id("rx-state").inner_text() == "Replaced"
    head = page.locator(".pagehead").inner_text()
    assert "awaiting payment" not in head
    assert page.get_by_role("button", name="Record the owner's payment").count() == 0
    status = page.get_by_test_id("item-status").inner_text()
    assert status == "Ended by the rename"
    assert new.number in page.get_by_test_id("replaced-by").inner_text()

    # The lists say so too.
    page.goto("/c/alder/prescriptions/")
    row = page.locator("tr", has_text=old.number)
    assert "Replaced" in row.inner_text() and "unpaid" not in row.inner_text()
    assert page.console_errors == []
