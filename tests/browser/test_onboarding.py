"""An onboarder finds the overdue clinic in the admin, ticks a step and sends its email."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.core import mail
from django.utils import timezone

from clinics import onboarding
from clinics.models import Connector, Integration
from tests.browser.conftest import log_in, shot
from tests.conftest import World
from tests.factories import ClinicFactory, IntegrationFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_onboarder_works_through_an_overdue_datapoint_checklist(
    world: World,
    page: Any,
) -> None:
    clinic = ClinicFactory(name="Cedar Cornerstone Clinic", email="primary@cedar.example")
    integration = IntegrationFactory(
        clinic=clinic, connector=Connector.DATAPOINT, status=Integration.Status.ONBOARDING
    )
    queued = integration.checklist.steps.get(template__key="queued")
    with mock.patch("django.utils.timezone.now", return_value=timezone.now() - timedelta(days=3)):
        onboarding.onboarding_step_update(step=queued, done=True, notes="", actor=world.onboarding)

    log_in(page, world.onboarding.username)
    page.wait_for_url("**/")
    page.goto("/admin/clinics/integration/")
    row = page.locator("#result_list tr", has_text="Cedar Cornerstone Clinic")
    assert row.get_by_test_id("onboarding-progress").inner_text().strip() == "1/7, 1 overdue"
    shot(page, "onboarding-integration-list")

    row.get_by_test_id("onboarding-progress").click()
    page.wait_for_url("**/admin/clinics/onboardingchecklist/*/change/")
    assert page.get_by_test_id("step-overdue").count() == 1
    shot(page, "onboarding-checklist")

    # The clinic filled in DataPoint's form: record the contact and tick the step.
    page.fill("#id_technical_contact_name", "Sam Rivera")
    page.fill("#id_technical_contact_email", "sam@cedar.example")
    page.locator("tr", has_text="Practice details, technical contact").locator(
        "input[type=checkbox][name$='-done']"
    ).check()
    page.click("input[name=_continue]")
    page.locator(".messagelist").wait_for()
    install = page.locator("tr", has_text="DataPoint installed the agent")
    assert "within 24 h of step 5" in install.inner_text()

    page.locator("tr", has_text="confirming it was added to the queue").get_by_role(
        "link", name="Preview and send"
    ).click()
    assert "primary@cedar.example" in page.get_by_test_id("email-preview").inner_text()
    shot(page, "onboarding-email-preview")
    page.get_by_role("button", name="Send this email").click()
    page.locator(".messagelist").wait_for()
    assert "Sent “Cedar Cornerstone Clinic: you're in" in page.locator(".messagelist").inner_text()
    shot(page, "onboarding-checklist-after-send")

    assert [m.to for m in mail.outbox] == [["primary@cedar.example"]]
    # The admin has no favicon (a 404 in the console); nothing may break the CSP.
    assert [e for e in page.console_errors if "Content Security Policy" in e] == []
