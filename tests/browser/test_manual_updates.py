"""Staff work the manual-update queue in a browser: accept, edit then accept, dismiss, merge."""

from __future__ import annotations

import os
from typing import Any

import pytest

from records.models import Client, ManualUpdate, Patient
from tests.browser.conftest import log_in
from tests.conftest import World
from tests.factories import ClientFactory
from tests.records.batches import batch, ingest, owner, pet

pytestmark = pytest.mark.django_db(transaction=True)
LATER = "2026-11-25T09:00:00Z"


def four_updates_waiting(world: World) -> dict[str, ManualUpdate]:
    """A changed address, name and pet name of C-1, and C-9 held as a possible match of the
    home-delivery customer HD-9; by kind."""
    ClientFactory(
        clinic=world.a.clinic,
        customer_ref="HD-9",
        first_name="Sam",
        last_name="Okafor",
        email="",
        phone="",
        address_line1="9 Elm St",
        postcode="97209",
    )
    ingest(
        world.a.clinic,
        batch(
            owner(),
            owner(
                "C-9",
                first_name="Simon",
                last_name="Okafor",
                email="",
                phone="",
                address={"line1": "9 Elm Street", "postcode": "97209"},
                patients=[],
            ),
        ),
    )
    ingest(
        world.a.clinic,
        batch(
            owner(
                first_name="Danielle",
                address={"line1": "40 Birch Ave"},
                modified_at=LATER,
                patients=[pet(name="Biscuit II", modified_at=LATER)],
            )
        ),
    )
    return {u.kind: u for u in ManualUpdate.objects.all()}


def test_staff_work_the_queue_in_place(world: World, page: Any) -> None:
    updates = four_updates_waiting(world)

    log_in(page, world.a.staff.username)
    page.goto("/c/alder/")
    assert page.get_by_test_id("count-manual-updates").locator(".num").inner_text() == "4"
    page.get_by_test_id("count-manual-updates").click()
    page.wait_for_url("**/c/alder/updates/")
    total = page.get_by_test_id("pending-total")
    assert total.inner_text() == "4"

    # Edit then accept: the address is corrected before it becomes the shipping address.
    row = page.get_by_test_id(f"update-{updates['client_address'].pk}")
    row.get_by_text("Edit, then accept").click()
    row.get_by_label("Address line 1").fill("40 Birch Avenue, Apt 3")
    row.get_by_role("button", name="Save and accept").click()
    row.wait_for(state="detached")
    assert total.inner_text() == "3"
    assert Client.objects.get(pims_id="C-1").address_line1 == "40 Birch Avenue, Apt 3"

    # Dismiss with a reason keeps the pharmacy's name.
    row = page.get_by_test_id(f"update-{updates['client_name'].pk}")
    row.get_by_text("Dismiss…").click()
    row.get_by_label("Why keep the pharmacy's value?").fill("Ships under her maiden name")
    row.get_by_role("button", name="Dismiss").click()
    row.wait_for(state="detached")
    assert total.inner_text() == "2"

    # Accept the rename.
    row = page.get_by_test_id(f"update-{updates['pet_name'].pk}")
    row.get_by_label("Same pet; only its name has changed").first.check()
    row.get_by_label("Reason for the rename").first.fill("The owner renamed him")
    row.get_by_role("button", name="Accept rename").click()
    row.wait_for(state="detached")
    assert Patient.objects.get(pims_id="P-1").name == "Biscuit II"

    # Confirm the possible match, after reading why it was suggested.
    row = page.get_by_test_id(f"update-{updates['possible_match'].pk}")
    assert "HD-9" in row.inner_text()
    evidence = row.get_by_test_id("match-evidence")
    assert "Match probability" in evidence.inner_text()
    assert "surname same" in evidence.locator("li.for").first.inner_text()
    if os.environ.get("SCREENSHOT_DIR"):
        row.screenshot(path=os.path.join(os.environ["SCREENSHOT_DIR"], "possible-match.png"))
    row.get_by_role("button", name="Same person — merge").click()
    row.wait_for(state="detached")
    assert total.inner_text() == "0"
    assert Client.objects.get(customer_ref="HD-9").pims_id == "C-9"
    page.reload()
    assert "Nothing waiting." in page.locator("#update-list").inner_text()
    assert page.console_errors == []
