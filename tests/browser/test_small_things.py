"""The smaller things a new user hits: the dashboard has Sync now and failed writebacks, the
favicon answers, the clinic switcher keeps the page, seven status cards share one row."""

from __future__ import annotations

from typing import Any

import pytest

from clinics.models import Connector, Role
from tests.browser.conftest import log_in
from tests.conftest import World
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_smaller_things(world: World, page: Any) -> None:
    integration = world.a.clinic.integration
    integration.connector = Connector.EZYVET
    integration.save()
    both = UserFactory(username="both-staff")
    MembershipFactory(user=both, clinic=world.a.clinic, role=Role.STAFF)
    MembershipFactory(user=both, clinic=world.b.clinic, role=Role.STAFF)

    log_in(page, both.username)
    page.goto("/c/alder/")
    assert page.get_by_test_id("sync-now").get_by_role("button", name="Sync now").count() == 1
    assert page.get_by_test_id("count-writebacks-failed").locator(".num").inner_text() == "0"
    assert "no heartbeat recorded yet" not in page.locator("main").inner_text()

    # The switcher keeps the page: the orders of the other clinic, not its dashboard.
    page.goto("/c/alder/orders/")
    page.get_by_test_id("clinic-switcher").locator("summary").click()
    page.get_by_test_id("clinic-switcher").get_by_role("link", name=world.b.clinic.name).click()
    page.wait_for_url("**/c/birch/orders/")

    # Seven WriteBack status cards, one row.
    page.goto("/c/birch/writeback/")
    tops = {
        round(card.bounding_box()["y"])
        for card in page.get_by_test_id("writeback-counts").locator(".count").all()
    }
    assert len(tops) == 1, tops

    assert page.request.get("/favicon.ico").status == 200
    assert page.console_errors == []
