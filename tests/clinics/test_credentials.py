"""Credentials are encrypted at rest and write-only; agent tokens are stored hashed."""

from __future__ import annotations

from django.db import connection
from django.urls import reverse

from clinics import services
from clinics.credentials import hash_agent_token
from clinics.models import AuditEvent, Integration
from tests.conftest import World, login

SECRET = "s3cr3t-ezyvet-client-secret-value"


def _raw_ciphertext(integration: Integration) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT credentials_ciphertext FROM clinics_integration WHERE id = %s", [integration.pk]
        )
        return cursor.fetchone()[0]


def test_credentials_are_encrypted_in_the_database(world: World) -> None:
    integration = world.a.clinic.integration
    services.integration_set_credentials(
        integration=integration, values={"client_id": "abc", "client_secret": SECRET}
    )
    assert SECRET not in _raw_ciphertext(integration)
    integration.refresh_from_db()
    assert integration.credentials()["client_secret"] == SECRET


def test_admin_takes_new_credentials_and_never_shows_them_back(world: World) -> None:
    integration = world.a.clinic.integration
    admin = login(world.onboarding)
    url = reverse("admin:clinics_integration_change", args=[integration.pk])
    response = admin.post(
        url,
        {
            "clinic": world.a.clinic.pk,
            "connector": "ezyvet",
            "status": "live",
            "base_url": "http://127.0.0.1:8765",
            "sync_interval": "01:00:00",
            "expected_interval": "03:00:00",
            "new_credentials": f"partner_id=p1\nclient_id=c1\nclient_secret={SECRET}\n",
        },
    )
    assert response.status_code == 302, response.content
    integration.refresh_from_db()
    assert integration.credentials()["client_secret"] == SECRET

    page = admin.get(url).text
    assert SECRET not in page
    assert "stored, encrypted" in page
    assert SECRET not in admin.get(reverse("admin:clinics_integration_changelist")).text
    event = AuditEvent.objects.get(action="integration.credentials_set")
    assert event.after == {"keys": ["client_id", "client_secret", "partner_id"]}
    assert SECRET not in str(AuditEvent.objects.values_list("before", "after"))


def test_malformed_credentials_text_is_refused_with_the_line(world: World) -> None:
    integration = world.a.clinic.integration
    response = login(world.onboarding).post(
        reverse("admin:clinics_integration_change", args=[integration.pk]),
        {
            "clinic": world.a.clinic.pk,
            "connector": "ezyvet",
            "status": "live",
            "sync_interval": "01:00:00",
            "expected_interval": "03:00:00",
            "new_credentials": "client_id=c1\nthis line has no separator",
        },
    )
    assert response.status_code == 200
    assert "Line 2 is not key=value." in response.text


def test_agent_token_is_stored_hashed_shown_once_and_revocable(world: World) -> None:
    integration = world.a.clinic.integration
    admin = login(world.onboarding)
    response = admin.post(
        reverse("admin:clinics_integration_changelist"),
        {
            "action": "issue_agent_token",
            "_selected_action": [integration.pk],
        },
    )
    token = response.context["issued"][0]["token"]
    assert token in response.text
    integration.refresh_from_db()
    assert integration.agent_token_hash == hash_agent_token(token)
    assert (
        token
        not in admin.get(reverse("admin:clinics_integration_change", args=[integration.pk])).text
    )
    assert services.integration_for_agent_token(token) == integration

    services.integration_revoke_agent_token(integration=integration)
    assert services.integration_for_agent_token(token) is None


def test_a_new_token_replaces_the_old_one(world: World) -> None:
    integration = world.a.clinic.integration
    first = services.integration_issue_agent_token(integration=integration)
    second = services.integration_issue_agent_token(integration=integration)
    assert services.integration_for_agent_token(first) is None
    assert services.integration_for_agent_token(second) == integration
