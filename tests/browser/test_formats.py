"""One date format, one way to name a person, phones in the clinic's national format, and the
payload's epoch dates readable."""

from __future__ import annotations

import re
from typing import Any

import pytest

from prescriptions.models import WritebackItem
from records.services import patient_rename
from tests.browser.conftest import log_in
from tests.conftest import World
from tests.prescriptions.conftest import _fresh_connectors as _fresh_connectors
from tests.prescriptions.conftest import catalogue as catalogue  # the fixtures
from tests.prescriptions.conftest import ezy_pet as ezy_pet
from tests.prescriptions.conftest import ezyvet_clinic as ezyvet_clinic
from tests.prescriptions.conftest import rx
from tests.prescriptions.conftest import site as site

pytestmark = pytest.mark.django_db(transaction=True)

DATE = r"\d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4}"
OTHER_DATES = [
    r"\d{4}-\d{2}-\d{2}",  # 2026-12-06
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\.? \d{1,2}, \d{4}",  # Dec. 6, 2026
    r"[ap]\.m\.",
    r"\w\.\.(\s|$)",  # a double full stop
]


def assert_one_format(text: str, where: str) -> None:
    for pattern in OTHER_DATES:
        found = re.search(pattern, text)
        assert found is None, f"{where}: {found.group(0)!r} is not the one format"


def test_dates_people_phones_and_payload_dates_read_one_way(
    world: World, ezy_pet: Any, catalogue: Any, page: Any
) -> None:
    world.a.staff.first_name, world.a.staff.last_name = "Robin", "Hale"
    world.a.staff.save()
    owner = ezy_pet.client
    owner.phone = "+15035550142"
    owner.save()
    patient_rename(
        patient=ezy_pet, name="Clementine", reason="New home", same_pet=True, actor=world.a.staff
    )
    rx(world.a, ezy_pet, catalogue.carprofen)
    sent = WritebackItem.objects.filter(kind="prescribe", status="delivered").first()
    assert sent is not None

    log_in(page, world.a.staff.username)
    page.wait_for_url("**/")
    pages = {
        "pet": f"/c/alder/pets/{ezy_pet.pk}/",
        "client": f"/c/alder/clients/{owner.pk}/",
        "writeback": f"/c/alder/writeback/{sent.pk}/",
        "prescription": sent.prescription.get_absolute_url(),
        "practice system": "/c/alder/integration/",
    }
    for where, url in pages.items():
        page.goto(url)
        text = page.locator("main").inner_text()
        assert re.search(DATE, text), f"{where}: no date shown"
        assert_one_format(text, where)

    # The pet's name history and timeline name the person, not the login.
    page.goto(pages["pet"])
    renames = page.get_by_test_id("renames").inner_text()
    assert "Robin Hale" in renames and world.a.staff.username not in renames
    assert world.a.staff.username not in page.get_by_test_id("timeline").inner_text()

    # The phone in the clinic's national format, the stored value kept; search finds it so.
    page.goto(pages["client"])
    assert page.get_by_test_id("field-phone").locator(".value").inner_text() == "(503) 555-0142"
    owner.refresh_from_db()
    assert owner.phone == "+15035550142"
    page.goto("/c/alder/clients/?q=(503) 555-0142")
    assert page.locator("tbody tr").count() == 1

    # ezyVet's epoch dates are readable beside the payload.
    page.goto(pages["writeback"])
    dates = page.get_by_test_id("payload-dates").inner_text()
    assert "date_of_prescription" in dates and re.search(DATE + r", \d{2}:\d{2}", dates)
    assert page.console_errors == []
