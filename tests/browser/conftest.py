"""Playwright driving Debian's Chromium against the live test server.

On CI (CI=true) a missing Chromium fails the run; elsewhere the browser tests are skipped with
the reason shown.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Playwright's sync API runs an event loop in this thread; Django's ORM calls from the test
# body are still synchronous and safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}; .ci/run must install it")
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.console_errors = []  # type: ignore[attr-defined]
    page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
    page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
    yield page
    context.close()


# Set to a folder to keep screenshots of the pages the tests visit (for a person to look at).
SHOTS = os.environ.get("VETSYNC_SCREENSHOTS", "")


def shot(page: Any, name: str) -> None:
    """A full-page screenshot named ``name``, when ``VETSYNC_SCREENSHOTS`` names a folder."""
    if SHOTS:
        # caret="initial": hiding the caret would inject a style, which the CSP blocks.
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True, caret="initial")


def log_in(page: Any, username: str, password: str = "pw-for-tests-only") -> None:
    """Log in through the form; whoever needs a second factor (enrolled beforehand through
    the same services as a person) enters the code their app would show."""
    from django.contrib.auth import get_user_model

    from clinics.two_factor.policy import two_factor_required
    from clinics.two_factor.services import has_two_factor
    from tests.two_factor import enrolled_device

    user = get_user_model().objects.filter(username=username).first()
    device = None
    if user is not None and (two_factor_required(user) or has_two_factor(user)):
        device = enrolled_device(user)
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    if device is not None:
        from tests.two_factor import code_for

        page.wait_for_url("**/accounts/two-factor/verify/**")
        page.fill("#id_token", code_for(device))
        page.click("button[type=submit].primary")
