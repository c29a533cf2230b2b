"""The onboarding team's admin for prescriptions: the catalogue, read-only prescriptions and
orders, the WriteBack list with "Retry failed writebacks", and WriteBack health by clinic."""

from __future__ import annotations

import pytest
from django.urls import reverse

from clinics.models import AuditEvent
from prescriptions import writeback
from prescriptions.models import WritebackItem
from tests.conftest import World, login
from tests.prescriptions.conftest import rx
from tests.prescriptions.writeback import ship

Status = WritebackItem.Status
CHANGELIST = "admin:prescriptions_writebackitem_changelist"


@pytest.fixture
def feed(world: World, catalogue, agent_pet):
    """Clinic B's agent feed: two lines the agent failed to write, one it wrote, one waiting."""
    prescription = rx(world.b, agent_pet, catalogue.carprofen)
    orders = [ship(world.b, prescription, quantity=10) for _ in range(4)]
    rows = [WritebackItem.objects.get(order=order) for order in orders]
    for row in rows[:2]:
        writeback.agent_ack(clinic=world.b.clinic, item_id=row.pk, ok=False, error="No patient")
    writeback.agent_ack(clinic=world.b.clinic, item_id=rows[2].pk, ok=True)
    return {"failed": rows[:2], "delivered": rows[2], "pending": rows[3], "rx": prescription}


def test_retry_action_retries_the_failed_and_skips_the_rest(world: World, feed) -> None:
    admin = login(world.onboarding)
    chosen = [*feed["failed"], feed["delivered"]]

    response = admin.post(
        reverse(CHANGELIST),
        {"action": "retry_failed", "_selected_action": [str(row.pk) for row in chosen]},
        follow=True,
    )

    page = response.content.decode()
    assert "Retried 2 writeback(s)" in page
    assert (
        "Skipped 1 that had not failed" in page and f"#{feed['delivered'].pk} (delivered)" in page
    )
    for row in feed["failed"]:
        row.refresh_from_db()
        assert row.status == Status.RETRIED
        assert WritebackItem.objects.get(retry_of=row).status == Status.PENDING
    assert not WritebackItem.objects.filter(retry_of=feed["delivered"]).exists()
    events = AuditEvent.objects.filter(action="writeback.retried")
    assert events.count() == 2 and {e.actor for e in events} == {world.onboarding}


def test_writeback_list_filters_and_searches_by_numbers(world: World, feed) -> None:
    admin = login(world.onboarding)
    url = reverse(CHANGELIST)

    failed = admin.get(url, {"status__exact": "failed", "clinic__id__exact": world.b.clinic.pk})
    by_rx = admin.get(url, {"q": feed["rx"].number})
    by_order = admin.get(url, {"q": feed["pending"].order.number})

    assert failed.status_code == 200
    assert list(failed.context["cl"].result_list) == list(
        WritebackItem.objects.filter(pk__in=[r.pk for r in feed["failed"]]).order_by("-pk")
    )
    assert by_rx.context["cl"].result_count == 4
    assert list(by_order.context["cl"].result_list) == [feed["pending"]]


def test_a_writeback_page_shows_its_attempts_and_nothing_is_editable(world: World, feed) -> None:
    admin = login(world.onboarding)
    row = feed["failed"][0]

    page = admin.get(reverse("admin:prescriptions_writebackitem_change", args=[row.pk]))

    html = page.content.decode()
    assert page.status_code == 200
    assert "No patient" in html and "Failed for good" in html
    assert "&quot;patient_pims_id&quot;: &quot;P-3001&quot;" in html
    assert 'name="_save"' not in html  # read-only: changes go through the services


def test_writeback_health_lists_failing_clinics_first(world: World, feed) -> None:
    world.a.clinic.writeback_enabled = True  # on, and nothing written back yet
    world.a.clinic.save()
    admin = login(world.onboarding)

    changelist = admin.get(reverse(CHANGELIST)).content.decode()
    page = admin.get(reverse("admin:prescriptions_writebackitem_health"))

    assert 'data-testid="writeback-health-link"' in changelist
    html = page.content.decode()
    birch = html.split('data-testid="health-birch"')[1].split("</tr>")[0]
    assert "Agent feed (SyncVet agent)" in birch
    assert "<strong>2</strong>" in birch  # failed
    assert "status__exact=pending" in birch and ">1</a>" in birch  # waiting
    assert "since" in birch and "No patient" in birch  # the open incident
    alder = html.split('data-testid="health-alder"')[1].split("</tr>")[0]
    assert "never" in alder  # no success yet
    assert html.index("health-birch") < html.index("health-alder")  # failing first


def test_products_filter_by_kind_and_compounded(world: World, catalogue) -> None:
    admin = login(world.onboarding)
    url = reverse("admin:prescriptions_product_changelist")

    compounded = admin.get(url, {"is_compounded__exact": "1"}).context["cl"].result_list
    diets = admin.get(url, {"kind__exact": "rx_nutrition"}).context["cl"].result_list

    assert list(compounded) == [catalogue.compounded]
    assert list(diets) == [catalogue.renal_diet]


def test_prescriptions_and_orders_are_found_by_number_and_read_only(world: World, feed) -> None:
    admin = login(world.onboarding)
    prescription = feed["rx"]
    order = feed["pending"].order

    found_rx = admin.get(
        reverse("admin:prescriptions_prescription_changelist"), {"q": prescription.number}
    )
    found_order = admin.get(reverse("admin:prescriptions_order_changelist"), {"q": order.number})
    rx_page = admin.get(reverse("admin:prescriptions_prescription_change", args=[prescription.pk]))

    assert list(found_rx.context["cl"].result_list) == [prescription]
    assert list(found_order.context["cl"].result_list) == [order]
    html = rx_page.content.decode()
    assert "Carprofen 75 mg chewable" in html  # the items inline
    assert 'name="_save"' not in html


def test_clinic_staff_cannot_enter_the_admin(world: World, feed) -> None:
    response = login(world.b.staff).get(reverse("admin:prescriptions_writebackitem_health"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_prescription_and_order_lists_find_a_number_as_staff_say_it(world: World, feed) -> None:
    admin = login(world.onboarding)
    prescription = feed["rx"]
    order = feed["pending"].order

    by_rx = admin.get(
        reverse("admin:prescriptions_prescription_changelist"),
        {"q": prescription.number.replace("-", " ").lower()},
    )
    by_order = admin.get(reverse("admin:prescriptions_order_changelist"), {"q": order.number})

    assert list(by_rx.context["cl"].result_list) == [prescription]
    assert list(by_order.context["cl"].result_list) == [order]
