"""Staff search for a client as they type, open the client, then the pet and its weight chart."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in, shot
from tests.conftest import World
from tests.factories import ClientFactory
from tests.records.batches import batch, ingest, owner, pet

pytestmark = pytest.mark.django_db(transaction=True)


def test_search_client_pet_and_weight_chart(world: World, page: Any) -> None:
    for i in range(5):
        ClientFactory(clinic=world.a.clinic, first_name="Other", last_name=f"Person{i}")
    ingest(
        world.a.clinic,
        batch(
            owner(
                phone="+1 503 555 0142",
                patients=[pet(weight=11.4, modified_at="2026-03-01T09:00:00Z")],
                modified_at="2026-03-01T09:00:00Z",
            )
        ),
    )
    for when, weight in (("2026-06-01T09:00:00Z", 12.1), ("2026-09-01T09:00:00Z", 12.9)):
        ingest(
            world.a.clinic,
            batch(
                owner(
                    phone="503-555-0199",
                    modified_at=when,
                    patients=[pet(weight=weight, modified_at=when)],
                )
            ),
        )

    log_in(page, world.a.staff.username)
    page.goto("/c/alder/clients/")
    rows = page.get_by_test_id("client-row")
    assert rows.count() == 6
    shot(page, "client-list")

    # Typing a phone number written another way narrows the list in place (htmx).
    page.fill("#q", "(503) 555-0142")
    expect(rows).to_have_count(1)
    assert "q=%28503%29" in page.url or "q=(503)" in page.url  # the search is in the URL
    assert rows.first.get_by_role("link").inner_text() == "Whitfield, Dana"
    shot(page, "client-search")

    rows.first.get_by_role("link", name="Whitfield, Dana").click()
    page.wait_for_url("**/c/alder/clients/*/")
    assert page.locator("h1").inner_text() == "Dana Whitfield"
    phone = page.get_by_test_id("field-phone")
    assert (
        "PIMS differs" in phone.inner_text() and "(503) 555-0199" in phone.inner_text()
    )  # national format
    history = page.get_by_test_id("timeline")
    assert history.locator("li").count() == 2  # copied; then the PIMS's phone, not applied
    assert "Changed in the PIMS, not applied" in history.locator("li").first.inner_text()
    shot(page, "client-page")

    page.get_by_test_id("pets").get_by_role("link", name="Biscuit").click()
    page.wait_for_url("**/c/alder/pets/*/")
    chart = page.get_by_test_id("weight-chart")
    assert chart.locator("svg polyline").count() == 1
    assert chart.locator("[data-testid=weight-point]").count() == 3
    assert "12.9 kg" in chart.locator("[data-testid=weight-point]").last.inner_html()
    assert chart.bounding_box()["height"] > 50  # drawn, not collapsed
    shot(page, "pet-page")

    page.get_by_test_id("owner").click()
    page.wait_for_url("**/c/alder/clients/*/")
    assert page.console_errors == []  # no CSP violation, no script error
