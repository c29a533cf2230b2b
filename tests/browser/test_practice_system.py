"""The Practice system page: credentials are tried before they are kept; a failing integration
shows as failing, since when and what to do, in plain words; a failed pull resumes by pulling."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clinics.models import Connector, Integration, Role
from clinics.services import integration_connect_ezyvet
from records.models import SyncRun
from records.pulls import ezyvet_pull_run, ezyvet_pull_start
from tests.browser.conftest import log_in
from tests.conftest import World
from tests.factories import MembershipFactory, UserFactory
from vetsync.pims.emulator import EzyVetEmulator

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def site() -> Iterator[EzyVetEmulator]:
    emulator = EzyVetEmulator(clients=6, seed=5, rate_per_minute=0, endpoint_rate_per_minute=0)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def live(world: World, site: EzyVetEmulator) -> Integration:
    """Alder on ezyVet, connected with working credentials, first copy taken: Live."""
    integration = world.a.clinic.integration
    integration.connector = Connector.EZYVET
    integration.base_url = site.base_url
    integration.status = Integration.Status.LIVE
    integration.save()
    assert integration_connect_ezyvet(integration=integration, text=site.credentials.as_text()).ok
    assert pull(integration).status == SyncRun.Status.SUCCEEDED
    integration.refresh_from_db()
    return integration


def pull(integration: Integration) -> SyncRun:
    run, _ = ezyvet_pull_start(integration=integration)
    return ezyvet_pull_run(run_id=run.pk)


def upload(page: Any, tmp_path: Path, text: str, *, keep_untried: bool = False) -> None:
    path = tmp_path / "client_credentials.txt"
    path.write_text(text)
    page.goto("/c/alder/integration/")
    page.set_input_files("#id_credentials_file", str(path))
    if keep_untried:
        page.check("#id_keep_untried")
    page.get_by_role("button", name="Upload and test").click()
    page.wait_for_load_state()


def test_a_wrong_credentials_file_never_replaces_working_ones(
    world: World, live: Integration, site: EzyVetEmulator, page: Any, tmp_path: Path
) -> None:
    admin = UserFactory(username="alder-admin")
    MembershipFactory(user=admin, clinic=world.a.clinic, role=Role.ADMIN)
    log_in(page, admin.username)
    page.wait_for_url("**/")

    wrong = site.credentials.as_text().replace("demo-secret", "wrong-secret-123")
    upload(page, tmp_path, wrong)

    check = page.get_by_test_id("connection-check").inner_text()
    assert "ezyVet did not accept the connection" in check
    assert "credentials in use stay in use" in check
    assert "wrong-secret-123" not in page.content()
    live.refresh_from_db()
    assert live.credentials()["client_secret"] == "demo-secret"
    assert page.get_by_test_id("integration-status").inner_text() == "Live"
    # The next sync still works with the credentials that were kept.
    assert pull(live).status == SyncRun.Status.SUCCEEDED

    # ezyVet unreachable: the file is not kept unless the admin says so.
    site.stop()
    rotated = site.credentials.as_text().replace("demo-secret", "rotated-secret")
    upload(page, tmp_path, rotated)
    assert "could not be reached" in page.get_by_test_id("connection-check").inner_text()
    live.refresh_from_db()
    assert live.credentials()["client_secret"] == "demo-secret"
    upload(page, tmp_path, rotated, keep_untried=True)
    assert "saved without being tried" in page.locator(".messages").inner_text()
    live.refresh_from_db()
    assert live.credentials()["client_secret"] == "rotated-secret"
    assert page.console_errors == []


def test_a_failing_integration_says_so_and_a_failed_pull_resumes_by_pulling(
    world: World, live: Integration, site: EzyVetEmulator, page: Any, tmp_path: Path
) -> None:
    # ezyVet issues a new secret: the stored credentials stop working.
    site.credentials = dataclasses.replace(site.credentials, client_secret="new-secret")
    site.expire_tokens()
    failed = pull(live)
    assert failed.status == SyncRun.Status.FAILED

    admin = UserFactory(username="alder-admin")
    MembershipFactory(user=admin, clinic=world.a.clinic, role=Role.ADMIN)
    log_in(page, admin.username)
    page.wait_for_url("**/")
    for url in ["/c/alder/", "/c/alder/integration/"]:
        page.goto(url)
        assert page.get_by_test_id("integration-status").inner_text() == "Failing"
        assert page.get_by_test_id("failing-since").inner_text().startswith("since ")
        problem = page.get_by_test_id("integration-problem").inner_text()
        assert "no longer accepts VetSync's sign-in details" in problem
        assert "uploads it on the Practice system page" in problem
        body = page.locator("main").inner_text()
        assert "HTTP" not in body and "refused the credentials" not in body  # no technical text

    page.goto(failed.get_absolute_url())
    problem = page.get_by_test_id("run-problem").inner_text()
    assert "no longer accepts VetSync's sign-in details" in problem
    assert "ezyVet:" not in problem and ".." not in problem

    upload(page, tmp_path, site.credentials.as_text())
    assert page.get_by_test_id("integration-status").inner_text() == "Live"

    page.goto(failed.get_absolute_url())
    page.get_by_role("button", name="Pull from ezyVet again").click()
    page.get_by_test_id("run-status").filter(has_text="Finished").wait_for()
    failed.refresh_from_db()
    assert failed.status == SyncRun.Status.SUCCEEDED
    live.refresh_from_db()
    assert live.failing_since is None and live.last_successful_sync_at is not None
    assert page.console_errors == []
