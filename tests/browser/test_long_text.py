"""Long text wraps inside its card: the page never grows wider than the window."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from prescriptions.models import Product, ProductKind
from prescriptions.services import ItemSpec, prescription_create
from records.services import patient_rename
from tests.browser.conftest import log_in
from tests.conftest import World
from tests.factories import ClientFactory, PatientFactory

pytestmark = pytest.mark.django_db(transaction=True)


def page_width(page: Any) -> tuple[int, int]:
    return page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")


def test_long_notes_names_and_queries_stay_inside_the_window(world: World, page: Any) -> None:
    owner = ClientFactory(clinic=world.a.clinic)
    pet = PatientFactory(client=owner, name="Biscuit")
    long_name = "Sir" + "Wigglesworth" * 8 + "X"  # 100 characters, no space
    assert len(long_name) == 100
    patient_rename(
        patient=pet, name=long_name, reason="The owner insisted", same_pet=True, actor=None
    )
    product = Product.objects.create(
        sku="APOQ-16", name="Apoquel 16 mg", kind=ProductKind.RX_MEDICATION, price=Decimal("2.4")
    )
    rx = prescription_create(
        clinic=world.a.clinic,
        patient=pet,
        vet=world.a.vet,
        items=[ItemSpec(product=product, quantity=30, refills=0, instructions="One daily")],
        actor=world.a.vet_user,
        approve=True,
        notes="n" * 5000,
    )

    log_in(page, world.a.vet_user.username)
    page.wait_for_url("**/")
    for url in [
        rx.get_absolute_url(),
        f"/c/alder/pets/{pet.pk}/",
        f"/c/alder/clients/{owner.pk}/",
        "/c/alder/clients/?q=" + "q" * 300,
        "/c/alder/prescriptions/",
    ]:
        page.goto(url)
        scroll, window = page_width(page)
        assert scroll <= window, f"{url} is {scroll} px wide in a {window} px window"

    # New notes are limited, and the form says so.
    page.goto(f"/c/alder/prescriptions/new/?patient={pet.pk}")
    assert page.locator("textarea[name=notes]").get_attribute("maxlength") == "2000"
    assert page.console_errors == []
