"""On a phone (390 px) every page fits the screen: a wide table scrolls inside its own box, its
words stay whole, and the grids stack, instead of the page growing sideways or a table
squeezing each column to one letter a line."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from prescriptions.models import Product, ProductKind
from prescriptions.services import ItemSpec, prescription_create
from records.models import Patient
from tests.browser.conftest import log_in
from tests.conftest import World
from tests.records.batches import batch, ingest, owner, pet

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}

# Words split across lines: a one-word cell or heading of a list table that takes more than one
# line box ("Na" / "me", "Marle" / "y").
SPLIT_WORDS = """() => [...document.querySelectorAll("table.list th, table.list td a")]
  .filter(el => el.offsetParent && /^\\S+$/.test(el.textContent.trim()))
  .filter(el => {
    const range = document.createRange();
    range.selectNodeContents(el);
    return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size > 1;
  })
  .map(el => el.textContent.trim())"""


def fits(page: Any) -> tuple[int, int]:
    return page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")


def test_clinic_pages_fit_a_phone_with_whole_words(world: World, page: Any) -> None:
    ingest(
        world.a.clinic,
        batch(owner(first_name="Marguerite", last_name="Okafor-Reyes", patients=[pet()])),
    )
    marley = Patient.objects.get(client__clinic=world.a.clinic)
    product = Product.objects.create(
        sku="RC-GI-LF",
        name="Royal Canin Gastrointestinal Low Fat canine, 13.2 lb",
        kind=ProductKind.RX_NUTRITION,
        price=Decimal("89.99"),
    )
    rx = prescription_create(
        clinic=world.a.clinic,
        patient=marley,
        vet=world.a.vet,
        items=[ItemSpec(product=product, quantity=1, refills=3, instructions="Sole diet")],
        actor=world.a.vet_user,
        approve=True,
    )

    log_in(page, world.a.vet_user.username)
    page.wait_for_url("**/")
    # On a desktop too, the half-width pets table kept "Marley" and "Name" whole.
    page.goto(f"/c/alder/clients/{marley.client_id}/")
    assert page.evaluate(SPLIT_WORDS) == []

    page.set_viewport_size(PHONE)
    for url in [
        "/c/alder/",
        "/c/alder/clients/",
        f"/c/alder/clients/{marley.client_id}/",
        f"/c/alder/pets/{marley.pk}/",
        rx.get_absolute_url(),
        "/c/alder/prescriptions/",
        "/c/alder/sync/",
        f"/c/alder/prescriptions/new/?patient={marley.pk}",
    ]:
        page.goto(url)
        scroll, window = fits(page)
        assert scroll <= window, f"{url} is {scroll} px wide on a {window} px phone"
        assert page.evaluate(SPLIT_WORDS) == [], f"{url} splits words in its tables"

    # The item rows of a new prescription scroll sideways; the product stays readable.
    product_box = page.locator("table.item-rows select").first.bounding_box()
    assert product_box is not None and product_box["width"] >= 200

    # The dashboard's count cards go two a row, not eleven full-width cards one under another.
    page.goto("/c/alder/")
    tops = page.locator("a.count").evaluate_all(
        "cards => cards.map(card => Math.round(card.getBoundingClientRect().top))"
    )
    assert len(tops) == 11 and len(set(tops)) == 6
    assert page.console_errors == []


def test_the_admin_health_page_fits_a_phone(world: World, page: Any) -> None:
    log_in(page, world.onboarding.username)
    page.set_viewport_size(PHONE)
    page.goto("/admin/health/")
    assert page.get_by_test_id("integration-health").count() == 1
    scroll, window = fits(page)
    assert scroll <= window, f"the health page is {scroll} px wide on a {window} px phone"
