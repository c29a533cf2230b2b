"""Accepting a manual update says what happened, updates every count and shows the empty state;
the pet-name card's actions line up; all of it by keyboard alone."""

from __future__ import annotations

from typing import Any

import pytest

from records.models import ManualUpdate, Patient
from tests.browser.conftest import log_in
from tests.browser.keyboard import tab_to
from tests.conftest import World
from tests.records.batches import batch, ingest, owner, pet

pytestmark = pytest.mark.django_db(transaction=True)
LATER = "2026-11-25T09:00:00Z"


def test_accepting_the_last_update_by_keyboard_gives_feedback(world: World, page: Any) -> None:
    ingest(world.a.clinic, batch(owner()))
    ingest(
        world.a.clinic,
        batch(owner(modified_at=LATER, patients=[pet(name="Biscuit II", modified_at=LATER)])),
    )
    update = ManualUpdate.objects.get(kind=ManualUpdate.Kind.PET_NAME)

    log_in(page, world.a.staff.username)
    page.goto("/c/alder/updates/")
    card = page.get_by_test_id(f"update-{update.pk}")
    assert "1 in all" in page.locator("#update-list").inner_text()

    # The card's actions line up: the two secondary actions sit on one line, not floating
    # halfway down beside the accept form.
    accept = card.get_by_role("button", name="Accept rename").bounding_box()
    edit = card.get_by_text("Edit, then accept").bounding_box()
    dismiss = card.get_by_text("Dismiss…").bounding_box()
    assert abs(edit["y"] - dismiss["y"]) < 2
    assert edit["y"] >= accept["y"] + accept["height"] or abs(edit["y"] - accept["y"]) < 4

    # Keyboard only: tick "same pet", give the reason, accept.
    tab_to(page, f"#update-{update.pk} input[name=same_pet]")
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.type("The owner renamed him")
    tab_to(page, f"#update-{update.pk} button[value=accept]")
    page.keyboard.press("Enter")

    notice = page.get_by_test_id("update-notice")
    notice.wait_for()
    assert notice.inner_text() == "Pet name for Biscuit II: accepted."
    assert page.get_by_test_id("pending-total").inner_text() == "0"
    listing = page.locator("#update-list").inner_text()
    assert "Nothing waiting." in listing and "1 in all" not in listing
    # The focus went to the notice (not lost to the page's top), so the keyboard user and a
    # screen reader hear what happened.
    assert page.evaluate("() => document.activeElement?.dataset.testid") == "update-notice"
    assert Patient.objects.get(pims_id="P-1").name == "Biscuit II"
    assert page.console_errors == []
