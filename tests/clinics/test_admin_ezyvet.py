"""The onboarding team connects an ezyVet clinic in the admin with the file ezyVet gave."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from clinics.models import Connector, Integration
from tests.conftest import World, login
from vetsync.pims.emulator import EzyVetEmulator


@pytest.fixture
def site() -> Iterator[EzyVetEmulator]:
    emulator = EzyVetEmulator(clients=5, seed=1, rate_per_minute=0, endpoint_rate_per_minute=0)
    emulator.start()
    yield emulator
    emulator.stop()


def post_form(world: World, integration: Integration, text: str, connector: str = "ezyvet"):
    return login(world.onboarding).post(
        reverse("admin:clinics_integration_change", args=[integration.pk]),
        {
            "clinic": integration.clinic_id,
            "connector": connector,
            "status": "live",
            "base_url": integration.base_url,
            "sync_interval": "01:00:00",
            "expected_interval": "03:00:00",
            "watermark_0": "",
            "watermark_1": "",
            "credentials_file": SimpleUploadedFile("client_credentials.txt", text.encode()),
            "new_credentials": "",
        },
        follow=True,
    )


def test_uploading_the_file_in_the_admin_connects_at_once(world: World, site) -> None:
    integration = world.a.clinic.integration
    Integration.objects.filter(pk=integration.pk).update(
        connector=Connector.EZYVET, base_url=site.base_url
    )
    integration.refresh_from_db()

    page = post_form(world, integration, site.credentials.as_text()).content.decode()

    assert "Credentials stored: ezyVet issued a token and every scope works." in page
    assert "demo-secret" not in page
    integration.refresh_from_db()
    assert integration.credentials()["site_uid"] == "demo-site"


def test_a_refused_secret_is_reported_in_the_admin(world: World, site) -> None:
    integration = world.a.clinic.integration
    Integration.objects.filter(pk=integration.pk).update(
        connector=Connector.EZYVET, base_url=site.base_url
    )
    integration.refresh_from_db()
    text = site.credentials.as_text().replace("demo-secret", "stale-secret")

    page = post_form(world, integration, text).content.decode()

    assert "Credentials file not stored: ezyVet refused it" in page
    assert "stale-secret" not in page
    integration.refresh_from_db()
    assert not integration.has_credentials


def test_a_credentials_file_for_an_agent_integration_is_refused(world: World, site) -> None:
    integration = world.a.clinic.integration  # a SyncVet agent
    page = post_form(world, integration, site.credentials.as_text(), connector="syncvet")
    assert "A credentials file is only for ezyVet." in page.content.decode()
    integration.refresh_from_db()
    assert not integration.has_credentials
