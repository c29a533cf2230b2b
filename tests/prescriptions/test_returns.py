"""Returns: a shipment that came back (or never reached the owner) is recorded with its reason
and who recorded it; what reaches ezyVet is exactly what issue 21 decided (nothing, unless the
prescription is stopped: then CANCELLED_CLIENT or CANCELLED_DR), and an agent gets a return
line. ``remaining`` is compared with the emulated ezyVet after each step."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from clinics.models import AuditEvent
from prescriptions.models import (
    ItemStatus,
    Order,
    ReturnEnd,
    ReturnReason,
    ShipmentReturn,
    WritebackItem,
)
from prescriptions.services import PrescriptionError, order_return
from tests.conftest import World, login
from tests.prescriptions.conftest import rx
from tests.prescriptions.writeback import calls, clock_at, deliver_all, ezyvet_items, ship

RETURN_FEED = "/api/agent/v1/writebacks"


def _remaining(prescription, site) -> tuple[int, int]:
    """(VetSync's remaining, ezyVet's remaining) of the prescription's one item."""
    item = prescription.items.get()
    return item.remaining, int(ezyvet_items(site, prescription)[item.product.sku]["remaining"])


def test_remaining_after_0_1_2_dispenses_and_a_return_matches_ezyvet(
    world: World, catalogue, site, ezy_pet, django_capture_on_commit_callbacks
) -> None:
    deliver = lambda: deliver_all(django_capture_on_commit_callbacks)  # noqa: E731
    with clock_at(timezone.now() - dt.timedelta(days=3)):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)  # 30 a fill, 2 refills: 90
    deliver()
    assert _remaining(prescription, site) == (90, 90)

    ship(world.a, prescription)
    deliver()
    assert _remaining(prescription, site) == (60, 60)

    second = ship(world.a, prescription)
    deliver()
    assert _remaining(prescription, site) == (30, 30)
    patches = len(calls(site, "PATCH"))

    order_return(order=second, actor=world.a.staff, reason=ReturnReason.OWNER_RETURNED)
    deliver()

    # VetSync has the returned 30 left again; ezyVet is told nothing (no "returned" status,
    # and a PATCH without a status needs a dispense), so it still shows its last dispense.
    assert _remaining(prescription, site) == (60, 30)
    assert len(calls(site, "PATCH")) == patches
    assert ezyvet_items(site, prescription)["CARP-75"]["status"] == "CURRENT"
    # The next dispense carries the right remaining to ezyVet.
    ship(world.a, prescription)
    deliver()
    assert _remaining(prescription, site) == (30, 30)


@pytest.mark.parametrize(
    ("end_as", "status"),
    [
        (ReturnEnd.CANCELLED_CLIENT, ItemStatus.CANCELLED_CLIENT),
        (ReturnEnd.CANCELLED_DR, ItemStatus.CANCELLED_DR),
    ],
)
def test_a_full_return_that_stops_the_prescription_ends_the_item_in_ezyvet(
    world: World, catalogue, site, ezy_pet, django_capture_on_commit_callbacks, end_as, status
) -> None:
    prescription = rx(world.a, ezy_pet, catalogue.carprofen)
    order = ship(world.a, prescription)
    deliver_all(django_capture_on_commit_callbacks)

    record = order_return(
        order=order, actor=world.a.staff, reason=ReturnReason.NOT_DELIVERED, end_as=end_as
    )
    deliver_all(django_capture_on_commit_callbacks)

    order.refresh_from_db()
    item = prescription.items.get()
    assert (record.is_full, order.status) == (True, Order.Status.RETURNED)
    assert (item.status, item.dispensed_quantity, item.remaining) == (status, 0, 90)
    in_ezyvet = ezyvet_items(site, prescription)["CARP-75"]
    assert in_ezyvet["status"] == status
    assert in_ezyvet["status_date"] != ""


def test_a_partial_return_keeps_the_order_shipped_and_gives_back_what_came_back(
    world: World, catalogue, site, ezy_pet, django_capture_on_commit_callbacks
) -> None:
    prescription = rx(world.a, ezy_pet, catalogue.carprofen, catalogue.apoquel)
    order = ship(world.a, prescription)
    deliver_all(django_capture_on_commit_callbacks)
    carprofen_line, apoquel_line = order.lines.order_by("pk")
    patches = len(calls(site, "PATCH"))

    record = order_return(
        order=order,
        actor=world.a.staff,
        reason=ReturnReason.DAMAGED,
        quantities={carprofen_line.pk: 10, apoquel_line.pk: 0},
        note="Crushed box",
    )
    deliver_all(django_capture_on_commit_callbacks)

    order.refresh_from_db()
    items = {i.product.sku: i for i in prescription.items.select_related("product")}
    assert (record.is_full, order.status) == (False, Order.Status.SHIPPED)
    assert [(line.order_line_id, line.quantity) for line in record.lines.all()] == [
        (carprofen_line.pk, 10)
    ]
    assert (items["CARP-75"].remaining, items["APOQ-16"].remaining) == (70, 60)
    assert len(calls(site, "PATCH")) == patches  # kept open: nothing for ezyVet

    page = login(world.a.staff).get(order.get_absolute_url()).content.decode()
    assert "Partly returned" in page and "Crushed box" in page
    assert "10 of 30 \u00d7 Carprofen 75 mg chewable" in page


def test_a_return_is_recorded_from_the_order_page_and_shown_behind_the_link(
    world: World, catalogue, ezy_pet
) -> None:
    prescription = rx(world.a, ezy_pet, catalogue.carprofen)
    order = ship(world.a, prescription)
    staff = login(world.a.staff)
    url = reverse("prescriptions:order-action", args=[world.a.clinic.slug, order.pk])
    page = staff.get(order.get_absolute_url()).content.decode()
    assert "Record a return" in page
    line = order.lines.get()

    response = staff.post(
        url,
        {
            "action": "return",
            "reason": ReturnReason.NOT_DELIVERED,
            "returned_on": world.a.clinic.localdate().isoformat(),
            f"qty-{line.pk}": "30",
            "end_as": "",
            "note": "Carrier lost it",
        },
        follow=True,
    )

    page = response.content.decode()
    assert "The whole shipment of" in page and "recorded as returned" in page
    assert "Never reached the owner" in page and "Record a return" not in page
    record = ShipmentReturn.objects.get(order=order)
    assert record.recorded_by == world.a.staff
    event = AuditEvent.objects.get(action="order.returned")
    assert event.actor == world.a.staff and event.after["reason_code"] == "not_delivered"
    # The prescription's page, where ezyVet's external_link points, shows it too.
    rx_page = staff.get(prescription.get_absolute_url()).content.decode()
    assert "came back on" in rx_page and "Never reached the owner" in rx_page
    # Another clinic's staff cannot record or see it.
    other = login(world.b.staff)
    assert other.post(url, {"action": "return", "reason": "damaged"}).status_code == 404
    assert other.get(order.get_absolute_url()).status_code == 404


def test_a_bad_return_is_refused_with_a_reason_and_changes_nothing(
    world: World, catalogue, ezy_pet
) -> None:
    with clock_at(timezone.now() - dt.timedelta(days=5)):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
    shipped_on = world.a.clinic.localdate() - dt.timedelta(days=2)
    order = ship(world.a, prescription, shipped_on=shipped_on)
    line = order.lines.get()
    staff = login(world.a.staff)
    url = reverse("prescriptions:order-action", args=[world.a.clinic.slug, order.pk])

    def post(**fields: str) -> str:
        data = {
            "action": "return",
            "reason": "owner_returned",
            "returned_on": world.a.clinic.localdate().isoformat(),
            f"qty-{line.pk}": "30",
            **fields,
        }
        return staff.post(url, data, follow=True).content.decode()

    assert "cannot have come back before that" in post(
        returned_on=(shipped_on - dt.timedelta(days=1)).isoformat()
    )
    assert "cannot be in the future" in post(
        returned_on=(world.a.clinic.localdate() + dt.timedelta(days=1)).isoformat()
    )
    assert "at least one line" in post(**{f"qty-{line.pk}": "0"})
    assert "Ensure this value is less than or equal to 30" in post(**{f"qty-{line.pk}": "31"})
    assert "Say why the shipment came back" in post(reason="")
    assert not ShipmentReturn.objects.exists()
    assert prescription.items.get().remaining == 60

    post()
    assert "already recorded" in post()
    assert ShipmentReturn.objects.count() == 1


def test_only_a_shipped_order_can_come_back(world: World, catalogue, ezy_pet) -> None:
    from prescriptions.services import LineSpec, order_place

    prescription = rx(world.a, ezy_pet, catalogue.carprofen)
    item = prescription.items.get()
    placed = order_place(
        clinic=world.a.clinic,
        patient=ezy_pet,
        lines=[LineSpec(product=item.product, quantity=30, prescription_item=item)],
        actor=world.a.staff,
    )
    with pytest.raises(PrescriptionError, match="only a shipped order"):
        order_return(order=placed, actor=world.a.staff, reason=ReturnReason.OWNER_RETURNED)


def test_an_agent_gets_a_return_line(world: World, catalogue, agent_clinic, agent_pet) -> None:
    from django.test import Client as HttpClient

    token = agent_clinic[1]
    prescription = rx(world.b, agent_pet, catalogue.carprofen)
    order = ship(world.b, prescription)

    order_return(order=order, actor=world.b.staff, reason=ReturnReason.NOT_DELIVERED)

    feed = HttpClient(HTTP_AUTHORIZATION=f"Bearer {token}").get(RETURN_FEED).json()
    lines = [line for line in feed["items"] if line["kind"] == "return"]
    assert len(lines) == 1
    line = lines[0]
    assert (line["order_ref"], line["qty"], line["product_reference"]) == (
        order.number,
        30,
        "CARP-75",
    )
    assert line["reason"].startswith("Never reached the owner")
    returned_at = dt.datetime.fromisoformat(line["returned_at"])
    assert world.b.clinic.localdate(returned_at) == world.b.clinic.localdate()
    assert WritebackItem.objects.filter(kind="return", target="agent").count() == 1


def test_the_onboarding_team_sees_a_return_in_the_admin(world: World, catalogue, ezy_pet) -> None:
    order = ship(world.a, rx(world.a, ezy_pet, catalogue.carprofen))
    order_return(order=order, actor=world.a.staff, reason=ReturnReason.DAMAGED, note="Torn pouch")

    page = login(world.onboarding).get(reverse("admin:prescriptions_order_change", args=[order.pk]))

    assert page.status_code == 200
    assert "Torn pouch" in page.content.decode()


def test_cancelling_a_shipped_order_points_to_a_return(world: World, catalogue, ezy_pet) -> None:
    from prescriptions.services import order_cancel

    order = ship(world.a, rx(world.a, ezy_pet, catalogue.carprofen))

    with pytest.raises(PrescriptionError, match="If it came back, record a return"):
        order_cancel(order=order, actor=world.a.staff, reason="Owner changed their mind")
