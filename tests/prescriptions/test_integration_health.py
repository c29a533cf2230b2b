"""The onboarding team's integration health page: every clinic, the ones needing attention
first, with last data received, runs failing, writebacks failing and "no data since"."""

from __future__ import annotations

import datetime as dt

from django.urls import reverse
from django.utils import timezone

from prescriptions import writeback
from records.models import SyncRun
from tests.conftest import World, login
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
