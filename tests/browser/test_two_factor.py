"""A vet sets up two-factor with the QR page, then logs in with a code (issue 17)."""

from __future__ import annotations

import time
from base64 import b32decode
from typing import Any

import pytest
from django_otp.oath import TOTP

from tests.conftest import World

pytestmark = pytest.mark.django_db(transaction=True)


def app_code(key_base32: str, step_offset: int = 0) -> str:
    """What an authenticator app holding this key shows (or will show next)."""
    totp = TOTP(b32decode(key_base32), drift=step_offset)
    totp.time = time.time()
    return str(totp.token()).zfill(6)


def test_a_vet_enrols_with_the_qr_page_then_logs_in_with_a_code(world: World, page: Any) -> None:
    page.goto("/accounts/login/")
    page.fill("#id_username", world.a.vet_user.username)
    page.fill("#id_password", "pw-for-tests-only")
    page.click("button[type=submit]")

    page.wait_for_url("**/accounts/two-factor/enrol/**")
    qr = page.get_by_alt_text("QR code for VetSync two-factor")
    assert qr.is_visible() and qr.evaluate("img => img.naturalWidth") > 100
    key = page.locator(".totp-key").inner_text().strip()
    page.fill("#id_token", app_code(key))
    page.click("button[type=submit].primary")

    assert page.locator("h1").inner_text() == "Two-factor is on"
    assert page.locator(".recovery-codes li").count() == 10
    page.get_by_role("link", name="I have saved them — continue").click()
    page.wait_for_url("**/c/alder/")
    page.get_by_role("button", name="Log out").click()

    page.goto("/accounts/login/")
    page.fill("#id_username", world.a.vet_user.username)
    page.fill("#id_password", "pw-for-tests-only")
    page.click("button[type=submit]")
    page.wait_for_url("**/accounts/two-factor/verify/**")
    page.fill("#id_token", app_code(key, step_offset=1))  # the enrolment used this step's
    page.click("button[type=submit].primary")
    page.wait_for_url("**/c/alder/")
    assert page.locator("h1").inner_text() == "Alder Vet Clinic"
    assert page.console_errors == []
