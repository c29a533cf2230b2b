"""The agent API: a clinic's token writes into that clinic only; big batches run in Celery."""

from __future__ import annotations

import json

import pytest
from django.test import Client as HttpClient
from django.test import override_settings

from clinics.services import integration_issue_agent_token, integration_revoke_agent_token
from records.models import Client, SyncRun
from tests.conftest import World
from tests.records.batches import batch, owner, pet

URL = "/api/agent/v1/batches"


def post(token: str | None, body: str, content_type: str = "application/json"):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return HttpClient().post(URL, data=body, content_type=content_type, headers=headers)


@pytest.fixture
def token(world: World) -> str:
    return integration_issue_agent_token(integration=world.a.clinic.integration)


def test_a_batch_is_applied_and_answered_with_counts(world: World, token: str) -> None:
    response = post(token, batch(owner(), owner("C-2", patients=[pet("P-2", weight=-1)])))

    assert response.status_code == 200
    answer = response.json()
    assert answer["counts"]["created"] == 3
    assert answer["counts"]["quarantined"] == 1
    assert answer["run_url"].endswith(f"/c/alder/sync/runs/{answer['run_id']}/")
    assert Client.objects.filter(clinic=world.a.clinic).count() == 2


def test_a_repeated_batch_id_is_a_no_op(world: World, token: str) -> None:
    body = batch(owner(), batch_id="agent-42")
    first = post(token, body).json()
    second = post(token, body)

    assert second.status_code == 200
    assert second.json()["duplicate"] is True
    assert second.json()["run_id"] == first["run_id"]
    assert SyncRun.objects.count() == 1


@pytest.mark.parametrize("header", [None, "vsa_not-a-real-token", "Basic abc"])
def test_missing_or_wrong_token_is_401(world: World, token: str, header: str | None) -> None:
    client = HttpClient()
    headers = (
        {"Authorization": header if header.startswith("Basic") else f"Bearer {header}"}
        if header
        else {}
    )
    response = client.post(
        URL, data=batch(owner()), content_type="application/json", headers=headers
    )
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Client.objects.exists()


def test_a_revoked_token_is_401(world: World, token: str) -> None:
    integration_revoke_agent_token(integration=world.a.clinic.integration)
    assert post(token, batch(owner())).status_code == 401


def test_another_clinics_token_writes_only_into_its_own_clinic(world: World, token: str) -> None:
    b_token = integration_issue_agent_token(integration=world.b.clinic.integration)
    response = post(b_token, batch(owner("C-from-b")))

    assert response.status_code == 200
    assert not Client.objects.filter(clinic=world.a.clinic).exists()
    assert Client.objects.get(pims_id="C-from-b").clinic == world.b.clinic


def test_bad_batches_are_refused_with_the_reason(world: World, token: str) -> None:
    assert post(token, "{not json").json()["error"].startswith("The batch is not valid UTF-8 JSON")
    missing = post(token, json.dumps({"source": "syncvet", "clients": []}))
    assert missing.status_code == 400
    assert "batch_id is required" in missing.json()["error"]
    assert post(token, batch(owner()), content_type="text/plain").status_code == 415
    wrong_source = post(token, batch(owner()).replace('"syncvet"', '"datapoint"'))
    assert wrong_source.status_code == 400
    assert "source 'datapoint' is not accepted" in wrong_source.json()["error"]
    assert not SyncRun.objects.exists()


def test_a_paused_integration_refuses_batches(world: World, token: str) -> None:
    world.a.clinic.integration.status = "paused"
    world.a.clinic.integration.save()
    assert post(token, batch(owner())).status_code == 409


@override_settings(AGENT_BATCH_INLINE_MAX_CLIENTS=2)
def test_a_big_batch_answers_202_and_a_worker_applies_it(
    world: World, token: str, django_capture_on_commit_callbacks
) -> None:
    body = batch(*[owner(f"C-{i}", patients=[]) for i in range(5)])
    # Tests run Celery eagerly: the task runs when the request's transaction commits.
    with django_capture_on_commit_callbacks(execute=True):
        response = post(token, body)
        assert response.status_code == 202
        assert response.json()["status"] == "queued"

    status = HttpClient().get(
        response.json()["status_url"], headers={"Authorization": f"Bearer {token}"}
    )
    assert status.json()["status"] == "succeeded"
    assert status.json()["counts"]["created"] == 5
