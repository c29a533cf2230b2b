"""A full extract in several parts (PIMS.md): each part a run, complete when every part arrived;
the agent's name, version and newest data recorded on the integration and shown."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client as HttpClient

from clinics.models import Integration
from clinics.services import integration_issue_agent_token
from records.models import Client, FullExtract, SyncRun
from tests.conftest import World, login
from tests.records.batches import owner

URL = "/api/agent/v1/batches"


@pytest.fixture
def token(world: World) -> str:
    return integration_issue_agent_token(integration=world.a.clinic.integration)


def part(number: int, parts: int, *clients: dict[str, Any], extract_id: str = "x-1", **extra: Any):
    return json.dumps(
        {
            "source": "syncvet",
            "batch_id": f"{extract_id}-part-{number}",
            "sent_at": "2026-11-24T02:00:05Z",
            "full": True,
            "extract_id": extract_id,
            "part": number,
            "parts": parts,
            "clients": list(clients),
            **extra,
        }
    )


def post(token: str, body: str, user_agent: str = "vetsync-agent/1.0.0 (Python 3.10.13; Linux)"):
    return HttpClient().post(
        URL,
        data=body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}", "User-Agent": user_agent},
    )


def test_an_extract_is_complete_when_every_part_has_arrived_in_any_order(
    world: World, token: str
) -> None:
    third = post(token, part(3, 3, owner("C-3")))
    first = post(token, part(1, 3, owner("C-1")))

    assert third.json()["extract"] == {"id": "x-1", "arrived": 1, "parts": 3, "complete": False}
    assert first.json()["extract"]["arrived"] == 2
    extract = FullExtract.objects.get(clinic=world.a.clinic)
    assert not extract.is_complete

    last = post(token, part(2, 3, owner("C-2")))

    assert last.status_code == 200
    assert last.json()["extract"] == {"id": "x-1", "arrived": 3, "parts": 3, "complete": True}
    extract.refresh_from_db()
    assert extract.is_complete
    assert Client.objects.filter(clinic=world.a.clinic).count() == 3
    assert list(SyncRun.objects.values_list("full", flat=True)) == [True, True, True]


def test_a_resent_part_is_a_no_op_and_does_not_count_twice(world: World, token: str) -> None:
    post(token, part(1, 2, owner("C-1")))
    again = post(token, part(1, 2, owner("C-1")))

    assert again.json()["duplicate"] is True
    assert again.json()["extract"]["arrived"] == 1
    assert SyncRun.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (part(1, 2, owner("C-9"), batch_id="other-batch"), "already arrived as batch x-1-part-1"),
        (part(2, 5, owner("C-9")), "has 2 parts, not 5"),
    ],
)
def test_a_part_that_contradicts_the_extract_is_refused(
    world: World, token: str, body: str, message: str
) -> None:
    post(token, part(1, 2, owner("C-1")))

    response = post(token, body)

    assert response.status_code == 400
    assert message in response.json()["error"]
    assert not Client.objects.filter(pims_id="C-9").exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"part": 4}, "1 <= part <= parts"),
        ({"parts": None}, "extract_id, part and parts go together"),
        ({"full": False}, 'on a batch with "full": true'),
        ({"part": "1"}, "whole numbers"),
    ],
)
def test_a_malformed_part_is_refused_with_its_reason(
    world: World, token: str, fields: dict[str, Any], message: str
) -> None:
    body = json.loads(part(1, 3, owner("C-1")))
    body.update(fields)

    response = post(token, json.dumps(body))

    assert response.status_code == 400
    assert message in response.json()["error"]
    assert not SyncRun.objects.exists()


def test_the_agents_version_contact_and_data_age_are_shown_to_the_clinic_and_the_team(
    world: World, token: str
) -> None:
    post(token, part(1, 2, owner("C-1")), user_agent="SyncVet/4.1")

    integration = Integration.objects.get(clinic=world.a.clinic)
    assert integration.agent_version == "SyncVet/4.1"
    assert integration.agent_last_contact_at is not None
    assert integration.agent_data_at.isoformat() == "2026-11-24T02:00:05+00:00"
    page = login(world.a.staff).get("/c/alder/integration/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="agent-version">SyncVet/4.1<' in html
    health = login(world.onboarding).get("/admin/health/")
    row = health.content.decode().split('data-testid="agent-alder"')[1].split("</td>")[0]
    assert "SyncVet/4.1" in row
    assert "first copy: 1 of 2 parts arrived" in row


def test_a_newer_version_replaces_the_old_one_and_a_future_clock_is_not_trusted(
    world: World, token: str
) -> None:
    post(token, part(1, 1, owner("C-1"), sent_at="2099-01-01T00:00:00Z"), user_agent="a/1")
    post(
        token, json.dumps({"source": "syncvet", "batch_id": "d-1", "clients": []}), user_agent="a/2"
    )

    integration = Integration.objects.get(clinic=world.a.clinic)
    assert integration.agent_version == "a/2"
    assert integration.agent_data_at.year < 2099
