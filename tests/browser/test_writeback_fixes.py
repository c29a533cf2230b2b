"""A failed writeback whose cause can be fixed links to where it is fixed."""

from __future__ import annotations

from typing import Any

import pytest

from prescriptions.models import WritebackItem
from tests.browser.conftest import log_in
from tests.conftest import World
from tests.factories import ClientFactory, PatientFactory
from tests.prescriptions.conftest import _fresh_connectors as _fresh_connectors
from tests.prescriptions.conftest import catalogue as catalogue  # the fixtures
from tests.prescriptions.conftest import ezyvet_clinic as ezyvet_clinic
from tests.prescriptions.conftest import rx
from tests.prescriptions.conftest import site as site

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_failed_writeback_links_to_where_its_cause_is_fixed(
    world: World, ezyvet_clinic: Any, catalogue: Any, page: Any
) -> None:
    owner = ClientFactory(clinic=world.a.clinic, pims_id="")
    pet = PatientFactory(client=owner, name="Juniper", pims_id="")
    rx(world.a, pet, catalogue.carprofen)
    failed = WritebackItem.objects.get()
    assert failed.status == WritebackItem.Status.FAILED

    log_in(page, world.a.staff.username)
    page.wait_for_url("**/")
    page.goto(f"/c/alder/writeback/{failed.pk}/")
    fixes = page.get_by_test_id("writeback-fixes")
    assert "Juniper has no PIMS record linked" in fixes.inner_text()
    assert "confirm a possible match" in fixes.inner_text()
    fixes.get_by_role("link", name="Juniper has no PIMS record linked").click()
    page.wait_for_url(f"**/c/alder/pets/{pet.pk}/")
    assert page.locator("h1").inner_text().startswith("Juniper")
    assert page.console_errors == []
