"""WriteBack to ezyVet, end to end against the emulator on a real socket: what the clinic's
ezyVet shows after each change in VetSync, and that nothing is lost or sent twice."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from prescriptions import writeback
from prescriptions.models import ItemStatus, Order, WritebackItem
from prescriptions.services import LineSpec, order_place, order_ship, prescription_items_end
from tests.conftest import World
from tests.prescriptions.conftest import rx


def deliver_all(capture) -> None:
    """Run what a worker would: every due row, until nothing is due."""
    for _ in range(20):
        due = writeback.writeback_due(now=timezone.now() + dt.timedelta(hours=1))
        if not due:
            return
        for item_id in due:
            with capture(execute=True):
                writeback.writeback_deliver(item_id=item_id)
    raise AssertionError("writebacks still due after 20 rounds")


def ezyvet_items(site, prescription) -> dict[str, dict]:
    records = [
        r
        for r in site.records("externalprescription")
        if r["external_reference"] == prescription.external_reference
    ]
    assert len(records) == 1, f"{len(records)} prescriptions in ezyVet"
    return {
        i["external_product_reference"]: i for i in records[0]["external_prescription_item_list"]
    }


def ship(world_clinic, prescription, **kw) -> Order:
    item = prescription.items.get()
    order = order_place(
        clinic=world_clinic.clinic,
        patient=prescription.patient,
        lines=[LineSpec(product=item.product, quantity=30, prescription_item=item)],
        actor=world_clinic.staff,
    )
    return order_ship(order=order, actor=world_clinic.staff, **kw)


def test_approve_ship_ship_cancel_reaches_ezyvet_in_order(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
    prescription.refresh_from_db()
    assert prescription.pims_id
    item = ezyvet_items(site, prescription)["CARP-75"]
    assert item["status"] == "PENDING"
    assert item["external_link"].endswith(prescription.get_absolute_url())

    with django_capture_on_commit_callbacks(execute=True):
        ship(world.a, prescription)
        ship(world.a, prescription)
    deliver_all(django_capture_on_commit_callbacks)
    item = ezyvet_items(site, prescription)["CARP-75"]
    assert item["status"] == "CURRENT"
    assert item["remaining"] == "30"

    with django_capture_on_commit_callbacks(execute=True):
        prescription_items_end(prescription=prescription, actor=world.a.vet_user, reason="Done")
    deliver_all(django_capture_on_commit_callbacks)
    assert ezyvet_items(site, prescription)["CARP-75"]["status"] == "CANCELLED_DR"
    assert prescription.items.get().status == ItemStatus.CANCELLED_DR
    assert set(WritebackItem.objects.values_list("status", flat=True)) == {"delivered"}


def test_a_lost_answer_to_the_post_is_found_not_posted_again(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    site.inject_fault("lost_write", endpoint="externalprescription", count=1)
    with django_capture_on_commit_callbacks(execute=True):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
    deliver_all(django_capture_on_commit_callbacks)

    ezyvet_items(site, prescription)  # exactly one prescription in ezyVet
    row = WritebackItem.objects.get()
    assert row.status == WritebackItem.Status.DELIVERED
