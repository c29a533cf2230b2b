"""Pet Owner Care looks a caller up, opens the record, records the owner's change; a lead reads
the log; the clinic sees the change on the client's history."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from playwright.sync_api import expect

from tests.browser.conftest import log_in, shot
from tests.conftest import World
from tests.factories import ClientFactory, PatientFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_care_lookup_open_change_and_log(world: World, page: Any) -> None:
    dana = ClientFactory(
        clinic=world.a.clinic,
        first_name="Dana",
        last_name="Whitfield",
        phone="(503) 555-0142",
        postcode="97201",
    )
    PatientFactory(client=dana, name="Biscuit")
    dan = ClientFactory(clinic=world.b.clinic, first_name="Dan", last_name="Whitfield")
    PatientFactory(client=dan, name="Luna", species="Feline")
    world.care.user_permissions.add(Permission.objects.get(codename="view_care_log"))

    log_in(page, world.care.username)
    expect(page).to_have_url(re.compile(r"/care/$"))  # care users land on the lookup
    expect(page.get_by_test_id("search-keys")).to_contain_text("Order number")
    page.fill("#q", "whitfeild")
    page.click("form[role=search] button")
    results = page.get_by_test_id("care-results")
    expect(results).to_contain_text("Alder Vet Clinic")
    expect(results).to_contain_text("Birch Animal Hospital")
    expect(results).to_contain_text("spelling differs")
    shot(page, "care-search")

    page.fill("#q", "503.555.0142")
    page.click("form[role=search] button")
    expect(results.locator("tbody tr")).to_have_count(1)
    expect(results).to_contain_text("is the number given")
    page.click("text=Dana Whitfield")
    expect(page.get_by_test_id("contact")).to_contain_text("(503) 555-0142")
    shot(page, "care-client")

    page.get_by_test_id("record-change").click()
    page.fill("#id_address_line1", "12 Elm St")
    save = "form[data-testid=owner-change-form] button[type=submit]"
    page.click(save)  # no verification note yet
    expect(page.get_by_test_id("error-verification")).to_be_visible()
    shot(page, "care-change-error")
    page.fill("#id_verification", "Confirmed Biscuit's birth date and postcode")
    page.click(save)
    expect(page.locator(".messages")).to_contain_text("Saved at the owner's request")
    expect(page.get_by_test_id("contact")).to_contain_text("12 Elm St")
    changes = page.get_by_test_id("tl-care").filter(has_text="at the owner's request")
    expect(changes).to_contain_text("Caller verified")
    shot(page, "care-client-changed")

    page.click("text=Audit log")
    log = page.get_by_test_id("care-log")
    expect(log).to_contain_text("whitfeild")
    expect(log).to_contain_text("Owner-requested change")
    page.select_option("#id_action", "care.owner_change")
    page.click("form[data-testid=log-filters] button[type=submit]")
    expect(log.locator("tbody tr")).to_have_count(1)
    shot(page, "care-log")
    assert page.console_errors == []

    # The clinic's staff see the change on the client's page.
    page.context.clear_cookies()
    log_in(page, world.a.staff.username)
    expect(page).to_have_url(re.compile(r"/c/alder/$"))
    page.goto(f"/c/alder/clients/{dana.pk}/")
    care = page.get_by_test_id("tl-care").filter(has_text="at the owner's request")
    expect(care).to_contain_text("12 Elm St")
    expect(care).to_contain_text("Caller verified: Confirmed Biscuit's birth date")
    shot(page, "clinic-client-after-care-change")
