"""The demo shows every feature from the first login, and tells one coherent story: records
came in through the sync engine and the customer import, changes wait for staff, a merge can
be read, orders ship after they are placed and after their prescription was written."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.management import call_command

from prescriptions.demo.clinics import DEMO_PASSWORD
from prescriptions.models import Order, PrescriptionItem, RxRequest
from records.models import Client, ManualUpdate, Outcome, SyncRecordOutcome
from tests.browser.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_demo_shows_every_feature_coherently(page: Any, settings: Any) -> None:
    settings.PIMS_EMULATOR_URL = "http://127.0.0.1:9"  # never a running demo's emulator
    call_command("seed_demo", clients=40, verbosity=0)

    for slug in ("riverside", "maple-grove"):
        # Every feature is there from the first login.
        pending = set(
            ManualUpdate.objects.pending()
            .filter(client__clinic__slug=slug)
            .values_list("kind", flat=True)
        )
        assert {"pet_name", "possible_match"} <= pending, (slug, pending)
        assert SyncRecordOutcome.objects.filter(
            run__clinic__slug=slug, outcome=Outcome.MERGED, kind="client"
        ).exists(), f"{slug} has no merged client"
        # One story: orders are placed before they ship, prescriptions written before.
        for order in Order.objects.filter(clinic__slug=slug, shipped_on__isnull=False):
            assert order.placed_at.date() <= order.shipped_on, order.number
        for item in PrescriptionItem.objects.filter(
            prescription__clinic__slug=slug, last_dispensed_at__isnull=False
        ).select_related("prescription"):
            assert item.prescription.created_at <= item.last_dispensed_at, item.pk
        # An owner's note says what the pet's record says.
        for request in RxRequest.objects.filter(clinic__slug=slug).select_related("patient"):
            said = re.search(r"weighs ([\d.]+) kg", request.owner_note)
            if said and request.patient.weight is not None:
                assert float(said.group(1)) == float(request.patient.weight)

    log_in(page, "maple-grove-admin", DEMO_PASSWORD)
    page.wait_for_url("**/c/maple-grove/")
    assert page.get_by_test_id("integration-status").inner_text() == "Live"
    assert "Never" not in page.get_by_test_id("last-sync").inner_text()
    assert page.get_by_test_id("no-data-since").count() == 0
    # A phone shown on screen finds its client.
    page.goto("/c/maple-grove/clients/?filter=customer")
    row = page.get_by_test_id("client-row").first
    phone = row.locator("td").nth(1).locator(".small").inner_text().strip()
    assert phone
    page.goto("/c/maple-grove/clients/?q=" + phone)
    assert page.get_by_test_id("client-row").count() >= 1
    page.context.clear_cookies()

    log_in(page, "riverside-staff", DEMO_PASSWORD)
    page.wait_for_url("**/c/riverside/")
    merged = (
        Client.objects.filter(clinic__slug="riverside", merged_into__isnull=True)
        .exclude(customer_ref="")
        .exclude(pims_id="")
        .first()
    )
    assert merged is not None
    page.goto(f"/c/riverside/clients/{merged.pk}/")
    assert "was merged with PIMS record" in page.get_by_test_id("merge-story").inner_text()
    page.context.clear_cookies()

    log_in(page, "onboarding", DEMO_PASSWORD)
    page.goto("/admin/clinics/integration/")
    for row in page.get_by_test_id("onboarding-progress").all():
        done, total = re.match(r"(\d+)/(\d+)", row.inner_text().strip()).groups()
        assert done == total, row.inner_text()
    assert page.console_errors == []
