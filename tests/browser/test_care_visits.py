"""Pet Owner Care's views of a client show the clinic one line per visit; a pending Rx request
is seen by Care and on the clinic's pet page."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from clinics.models import AuditEvent
from prescriptions.models import Product, ProductKind
from prescriptions.services import rx_request_submit
from tests.browser.conftest import log_in
from tests.conftest import World
from tests.factories import ClientFactory, PatientFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_care_visits_are_one_line_each_and_rx_requests_are_seen(
    world: World, browser: Any, live_server: Any, page: Any
) -> None:
    owner = ClientFactory(clinic=world.a.clinic, first_name="Dana", last_name="Whitfield")
    pet = PatientFactory(client=owner, name="Biscuit")
    product = Product.objects.create(
        sku="APOQ-16", name="Apoquel 16 mg", kind=ProductKind.RX_MEDICATION, price=Decimal("2.4")
    )
    rx_request_submit(clinic=world.a.clinic, patient=pet, product=product, quantity=30)

    log_in(page, world.care.username)
    page.wait_for_url("**/care/**")
    for _ in range(6):
        page.goto(f"/care/clients/{owner.pk}/")
    requests = page.get_by_test_id("panel-rx-requests").inner_text()
    assert "Apoquel 16 mg" in requests and "Waiting for the clinic" in requests
    # Care's own log keeps every view.
    assert (
        AuditEvent.objects.filter(action__startswith="care.", object_id=str(owner.pk)).count() >= 6
    )

    staff = browser.new_context(base_url=live_server.url).new_page()
    log_in(staff, world.a.staff.username)
    staff.wait_for_url("**/")
    staff.goto(f"/c/alder/clients/{owner.pk}/")
    timeline = staff.get_by_test_id("timeline").inner_text()
    assert timeline.count("Looked up by Pet Owner Care") == 1
    assert "6 views" in timeline
    staff.goto(f"/c/alder/pets/{pet.pk}/")
    requests = staff.get_by_test_id("panel-rx-requests").inner_text()
    assert "Apoquel 16 mg" in requests and "Waiting for the clinic" in requests
    staff.context.close()
