"""The onboarding team's integration health page: every clinic, the ones needing attention
first, with last data received, runs failing, writebacks failing and "no data since"."""

from __future__ import annotations

import datetime as dt
import re

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clinics.models import Clinic, Connector, Integration
from prescriptions import writeback
from records.models import SyncRun
from tests.conftest import World, login
from tests.factories import ClinicFactory, IntegrationFactory
from tests.prescriptions.conftest import rx
from tests.prescriptions.writeback import ship


def test_the_health_page_puts_failing_clinics_first(
    world: World, catalogue, agent_clinic, agent_pet
) -> None:
    # Alder: received data an hour ago, all well.
    alder = world.a.clinic.integration
    alder.last_successful_sync_at = timezone.now() - dt.timedelta(hours=1)
    alder.save()
    # Birch: its agent could not write a shipment, and its last run failed.
    order = ship(world.b, rx(world.b, agent_pet, catalogue.carprofen))
    line = order.writebacks.get()
    writeback.agent_ack(clinic=world.b.clinic, item_id=line.pk, ok=False, error="No patient")
    SyncRun.objects.create(
        clinic=world.b.clinic, source="syncvet", trigger="api", batch_id="b-1",
        status=SyncRun.Status.FAILED,
    )  # fmt: skip

    page = login(world.onboarding).get(reverse("admin:integration-health"))

    html = page.content.decode()
    assert page.status_code == 200
    assert html.index('data-testid="health-birch"') < html.index('data-testid="health-alder"')
    birch = html.split('data-testid="health-birch"')[1].split("</tr>")[0]
    assert "including the latest" in birch and "status__exact=failed" in birch
    alder_row = html.split('data-testid="health-alder"')[1].split("</tr>")[0]
    assert "overdue" not in alder_row and "an hour ago" in alder_row
    assert "1 needs attention" in html


def test_the_health_page_is_for_the_onboarding_team_only(world: World) -> None:
    assert login(world.a.staff).get(reverse("admin:integration-health")).status_code == 302
    index = login(world.onboarding).get(reverse("admin:index")).content.decode()
    assert 'data-testid="health-link"' in index


# --- at fleet size: a page at a time, needs attention first, filters, bounded queries ------


def _fleet(n: int, *, well: bool = True, start: int = 0) -> list[Integration]:
    """``n`` integrations that received data a moment ago (all well), named in order."""
    at = timezone.now() - dt.timedelta(minutes=5)
    return [
        IntegrationFactory(
            clinic=ClinicFactory(name=f"Fleet {i:03d}", slug=f"fleet-{i:03d}"),
            connector=Connector.EZYVET if i % 2 else Connector.SYNCVET,
            last_successful_sync_at=at if well else None,
        )
        for i in range(start, start + n)
    ]


def _rows(html: str) -> list[str]:
    return re.findall(r'data-testid="health-([a-z0-9-]+)"', html)


def test_the_health_page_holds_fifty_a_page_and_pages_on(world: World) -> None:
    for integration in (world.a.clinic.integration, world.b.clinic.integration):
        integration.last_successful_sync_at = timezone.now()
        integration.save()
    _fleet(58)
    onboarding = login(world.onboarding)

    first = onboarding.get(reverse("admin:integration-health")).content.decode()
    second = onboarding.get(reverse("admin:integration-health"), {"page": 2}).content.decode()

    assert len(_rows(first)) == 50 and len(_rows(second)) == 10
    assert "Page 1 of 2" in first and "page=2" in first
    assert set(_rows(first)).isdisjoint(_rows(second))
    assert "60 integrations; 0 need attention" in first


def test_what_needs_attention_comes_first_whatever_its_name(world: World) -> None:
    fleet = _fleet(60)
    last = fleet[-1]  # "Fleet 059": last by name, on page 2 if all were well
    last.failing_since = timezone.now() - dt.timedelta(hours=1)
    last.save()
    overdue = fleet[-2]
    overdue.last_successful_sync_at = timezone.now() - dt.timedelta(hours=5)
    overdue.save()
    quiet = fleet[-3]  # a failed run in the last week
    SyncRun.objects.create(
        clinic=quiet.clinic, source="syncvet", trigger="agent", batch_id="x",
        status=SyncRun.Status.FAILED, created_at=timezone.now() - dt.timedelta(days=2),
    )  # fmt: skip
    SyncRun.objects.create(
        clinic=quiet.clinic, source="syncvet", trigger="agent", batch_id="y",
        status=SyncRun.Status.SUCCEEDED,
    )  # fmt: skip

    html = login(world.onboarding).get(reverse("admin:integration-health")).content.decode()

    rows = _rows(html)
    # Alder and Birch never received data (overdue); then the three, by clinic name.
    assert rows[:5] == ["alder", "birch", "fleet-057", "fleet-058", "fleet-059"]
    assert rows[5] == "fleet-000"
    assert html.count('data-testid="attention"') == 5


def test_the_health_page_filters_by_connector_state_and_name(world: World) -> None:
    fleet = _fleet(6)
    fleet[1].failing_since = timezone.now()
    fleet[1].save()
    fleet[2].status = Integration.Status.PAUSED
    fleet[2].failing_since = timezone.now()  # paused: not "failing"
    fleet[2].save()
    onboarding = login(world.onboarding)
    url = reverse("admin:integration-health")

    ezyvet = _rows(onboarding.get(url, {"connector": "ezyvet"}).content.decode())
    failing = _rows(onboarding.get(url, {"state": "failing"}).content.decode())
    paused = _rows(onboarding.get(url, {"state": "paused"}).content.decode())
    attention = _rows(onboarding.get(url, {"state": "attention"}).content.decode())
    named = _rows(onboarding.get(url, {"q": "fleet 004"}).content.decode())
    both = onboarding.get(url, {"connector": "ezyvet", "state": "paused"}).content.decode()

    assert ezyvet == ["fleet-001", "fleet-003", "fleet-005"]
    assert failing == ["fleet-001"] and paused == ["fleet-002"]
    assert attention == ["alder", "birch", "fleet-001"]
    assert named == ["fleet-004"]
    assert _rows(both) == [] and "No integration matches these filters." in both
    bad = onboarding.get(url, {"connector": "nonsense", "state": "<b>", "page": "x"})
    assert bad.status_code == 200 and len(_rows(bad.content.decode())) == 8


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_the_health_page_asks_the_database_as_often_for_5_clinics_as_for_50(
    world: World,
) -> None:
    url = reverse("admin:integration-health")
    onboarding = login(world.onboarding)
    onboarding.get(url)  # the session's first page also records the visit
    _fleet(3, well=False)
    few = _queries(onboarding, url)
    _fleet(45, well=False, start=3)
    many = _queries(onboarding, url)
    assert few == many


def test_writeback_health_pages_on_and_asks_as_often_for_5_clinics_as_for_50(
    world: World,
) -> None:
    url = reverse("admin:prescriptions_writebackitem_health")
    onboarding = login(world.onboarding)
    onboarding.get(url)  # the session's first page also records the visit
    for integration in _fleet(3):
        Clinic.objects.filter(pk=integration.clinic_id).update(writeback_enabled=True)
    few = _queries(onboarding, url)
    for integration in _fleet(52, start=3):
        Clinic.objects.filter(pk=integration.clinic_id).update(writeback_enabled=True)
    many = _queries(onboarding, url)

    html = onboarding.get(url).content.decode()
    assert few == many
    assert len(_rows(html)) == 50 and "Page 1 of 2 (55 clinics)" in html
    assert "Fleet 054" in onboarding.get(url, {"page": 2}).content.decode()
