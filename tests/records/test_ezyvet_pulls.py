"""ezyVet end to end: the credentials upload, first copy, deltas and faults, on a real socket."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from clinics.models import AuditEvent, Connector, Integration, Role
from records.models import Client, ManualUpdate, SyncRun
from records.pulls import ezyvet_integrations_due, ezyvet_pull_run, ezyvet_pull_start
from tests.conftest import World, login
from tests.factories import MembershipFactory, UserFactory
from vetsync.pims.emulator import EzyVetEmulator
from vetsync.pims.emulator.site import ALL_SCOPES


@pytest.fixture
def site() -> Iterator[EzyVetEmulator]:
    emulator = EzyVetEmulator(clients=25, seed=3, rate_per_minute=0, endpoint_rate_per_minute=0)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def integration(world: World, site: EzyVetEmulator) -> Integration:
    integration = world.a.clinic.integration
    integration.connector = Connector.EZYVET
    integration.base_url = site.base_url
    integration.save()
    return integration


@pytest.fixture
def clinic_admin(world: World):
    admin = UserFactory(username="alder-admin")
    MembershipFactory(user=admin, clinic=world.a.clinic, role=Role.ADMIN)
    return admin


def upload(user, text: str):
    return login(user).post(
        reverse("clinics:integration", args=["alder"]),
        {"credentials_file": SimpleUploadedFile("client_credentials.txt", text.encode())},
        follow=True,
    )


def connected(integration: Integration, site: EzyVetEmulator) -> Integration:
    from clinics.services import integration_connect_ezyvet

    assert integration_connect_ezyvet(integration=integration, text=site.credentials.as_text()).ok
    integration.refresh_from_db()
    return integration


def pull(integration: Integration) -> SyncRun:
    run, created = ezyvet_pull_start(integration=integration)
    assert created
    return ezyvet_pull_run(run_id=run.pk)


def test_a_clinic_admin_uploads_the_credentials_file(
    world: World, integration, site, clinic_admin
) -> None:
    page = upload(clinic_admin, site.credentials.as_text())

    text = page.content.decode()
    assert "Connected: ezyVet issued a token" in text
    assert site.credentials.client_secret not in text
    integration.refresh_from_db()
    assert integration.credentials()["client_secret"] == "demo-secret"
    assert "demo-secret" not in integration.credentials_ciphertext
    assert AuditEvent.objects.filter(
        action="integration.connection_checked", actor=clinic_admin
    ).exists()


def test_a_bad_secret_is_named_without_showing_it(
    world: World, integration, site, clinic_admin
) -> None:
    bad = site.credentials.as_text().replace("demo-secret", "wrong-secret-123")
    text = upload(clinic_admin, bad).content.decode()
    assert "ezyVet did not accept the connection" in text
    assert "wrong-secret-123" not in text
    integration.refresh_from_db()
    assert not integration.has_credentials  # refused credentials are never kept


def test_a_missing_scope_is_listed(world: World, integration, site, clinic_admin) -> None:
    site.configure(scopes=tuple(s for s in ALL_SCOPES if s != "read-animal"))
    text = upload(clinic_admin, site.credentials.as_text()).content.decode()
    assert "read-animal: <strong>not granted to this integration</strong>" in text


def test_an_unreadable_file_says_what_is_missing(world: World, integration, clinic_admin) -> None:
    text = upload(clinic_admin, "Partner ID: abc\n").content.decode()
    assert "Client ID" in text  # the parser names the missing keys
    integration.refresh_from_db()
    assert not integration.has_credentials


def test_staff_who_are_not_clinic_admins_cannot_upload(world: World, integration, site) -> None:
    assert upload(world.a.staff, site.credentials.as_text()).status_code == 403


def test_first_copy_then_a_delta_moves_the_watermark_only_forward(
    world: World, integration, site
) -> None:
    integration = connected(integration, site)
    first = pull(integration)

    assert first.status == "succeeded" and first.full
    customers = len(site.customer_ids())
    quarantined = list(
        first.outcomes.filter(outcome="quarantined").values_list("pims_id", "detail")
    )
    assert Client.objects.filter(clinic=world.a.clinic).count() == customers, quarantined
    integration.refresh_from_db()
    watermark = integration.watermark
    assert watermark is not None

    contact_id = site.customer_ids()[0]
    site.update_record("contact", contact_id, {"first_name": "Zebedee"})
    delta = pull(integration)

    assert not delta.full
    assert delta.total < customers  # proportional to the change, not to the site
    update = ManualUpdate.objects.get(client__pims_id=contact_id, kind="client_name")
    assert update.proposed["first_name"] == "Zebedee"
    integration.refresh_from_db()
    assert integration.watermark >= watermark


def test_a_pull_that_fails_leaves_the_watermark_and_the_next_one_catches_up(
    world: World, integration, site
) -> None:
    integration = connected(integration, site)
    pull(integration)
    integration.refresh_from_db()
    watermark = integration.watermark
    added = site.add_clients(2)

    site.inject_fault("server_error", count=50, status=503)
    failed = pull(integration)
    assert failed.status == "failed"
    assert failed.error.startswith("ezyVet:")
    integration.refresh_from_db()
    assert integration.watermark == watermark
    assert "ezyVet" in integration.last_error

    site.clear_faults()
    again = pull(integration)
    assert again.status == "succeeded"
    assert set(added) <= set(Client.objects.values_list("pims_id", flat=True))


def test_sync_now_starts_one_pull_and_a_second_click_shows_it(
    world: World, integration, site, django_capture_on_commit_callbacks
) -> None:
    connected(integration, site)
    staff = login(world.a.staff)
    url = reverse("records:sync-now", args=["alder"])
    first, _ = ezyvet_pull_start(integration=integration)  # one is already under way
    response = staff.post(url)
    assert response["Location"] == first.get_absolute_url()

    ezyvet_pull_run(run_id=first.pk)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(url)
    run = SyncRun.objects.exclude(pk=first.pk).get()
    assert response["Location"] == run.get_absolute_url()
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert AuditEvent.objects.filter(action="sync.pull_requested", actor=world.a.staff).exists()


def test_each_live_integration_is_pulled_on_its_own_schedule(
    world: World, integration, site
) -> None:
    integration = connected(integration, site)
    integration.status = Integration.Status.LIVE
    integration.sync_interval = dt.timedelta(hours=2)
    integration.save()
    Integration.objects.filter(pk=integration.pk).update(
        next_pull_at=timezone.now() + dt.timedelta(hours=1)
    )
    assert integration not in ezyvet_integrations_due()

    Integration.objects.filter(pk=integration.pk).update(
        next_pull_at=timezone.now() - dt.timedelta(minutes=1)
    )
    assert [i.pk for i in ezyvet_integrations_due()] == [integration.pk]
    ezyvet_pull_start(integration=integration)
    assert ezyvet_integrations_due() == []  # the unfinished run holds it
    integration.refresh_from_db()
    # The next pull is the clinic's slot, within the two hours to come.
    ahead = integration.next_pull_at - timezone.now()
    assert dt.timedelta(0) < ahead <= dt.timedelta(hours=2)
