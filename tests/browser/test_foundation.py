"""A clinic member logs in, sees the dashboard, switches clinic, with no CSP violation."""

from __future__ import annotations

from typing import Any

import pytest

from clinics.models import Role
from tests.browser.conftest import log_in
from tests.conftest import World
from tests.factories import ClientFactory, MembershipFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_staff_logs_in_sees_dashboard_switches_clinic_without_csp_errors(
    world: World, page: Any
) -> None:
    MembershipFactory(user=world.a.staff, clinic=world.b.clinic, role=Role.STAFF)
    ClientFactory.create_batch(3, clinic=world.a.clinic)

    log_in(page, world.a.staff.username)
    page.wait_for_url("**/")
    assert page.locator("h1").inner_text() == "Your clinics"
    page.locator(".tiles").get_by_role("link", name="Alder Vet Clinic").click()

    page.wait_for_url("**/c/alder/")
    assert page.get_by_test_id("count-clients").locator(".num").inner_text() == "3"

    page.locator("[data-testid=clinic-switcher] summary").click()
    page.get_by_role("link", name="Birch Animal Hospital").click()
    page.wait_for_url("**/c/birch/")
    assert page.locator("h1").inner_text() == "Birch Animal Hospital"
    assert page.get_by_test_id("count-clients").locator(".num").inner_text() == "0"

    # An htmx-driven page: typing searches in place, and htmx ran under the strict CSP.
    page.goto("/c/alder/clients/")
    page.fill("#q", world.a.clinic.clients.first().last_name)
    page.wait_for_function("document.querySelectorAll('#client-results tbody tr').length >= 1")
    assert page.evaluate("typeof window.htmx") == "object"
    csp = [e for e in page.console_errors if "Content Security Policy" in e or "CSP" in e]
    assert csp == [], csp
    assert page.console_errors == []


def test_wrong_password_shows_a_clear_error(world: World, page: Any) -> None:
    log_in(page, world.a.staff.username, password="wrong")
    assert "didn't match" in page.locator(".error").inner_text()
