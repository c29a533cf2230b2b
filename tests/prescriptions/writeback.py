"""Driving and watching WriteBack in tests: place and ship an order, run what beat and the
workers would until nothing is due, read what reached the emulated ezyVet, set the clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

from django.utils import timezone

from prescriptions import writeback
from prescriptions.models import Order, WritebackItem
from prescriptions.services import LineSpec, order_place, order_ship

Status = WritebackItem.Status


@contextmanager
def clock_at(moment: dt.datetime) -> Iterator[None]:
    """Let the code under test believe it is ``moment`` (backoffs, Retry-After, leases)."""
    with mock.patch.object(timezone, "now", return_value=moment):
        yield


def deliver_all(capture) -> None:
    """Run what the beat sweep and the workers would, each round once every backoff, Retry-After
    and lease has run out, until nothing is due."""
    moment = timezone.now()
    for _ in range(20):
        waiting = WritebackItem.objects.filter(
            status__in=(Status.PENDING, Status.SENDING, Status.HELD)
        )
        times = [t for row in waiting.values_list("next_attempt_at", "claimed_until") for t in row]
        moment = max([moment, *(t for t in times if t)]) + dt.timedelta(hours=1)
        with clock_at(moment):
            due = writeback.writeback_due()
            if not due:
                return
            outcomes = set()
            for item_id in due:
                with capture(execute=True):
                    done = writeback.writeback_deliver(item_id=item_id)
                outcomes.add(done.outcome if done else None)
            if outcomes == {"held"}:
                return  # only rows held for the clinic are left: they wait for a person
    raise AssertionError("writebacks still due after 20 rounds")


def ezyvet_records(site, prescription) -> list[dict]:
    return [
        r
        for r in site.records("externalprescription")
        if r["external_reference"] == prescription.external_reference
    ]


def ezyvet_items(site, prescription) -> dict[str, dict]:
    records = ezyvet_records(site, prescription)
    assert len(records) == 1, f"{len(records)} prescriptions in ezyVet"
    return {
        i["external_product_reference"]: i for i in records[0]["external_prescription_item_list"]
    }


def calls(site, method: str) -> list[dict]:
    """The emulator's log of ``method`` calls on v1/externalprescription."""
    return [
        entry
        for entry in site.request_log()
        if entry["method"] == method and entry["endpoint"] == "externalprescription"
    ]


def ship(world_clinic, prescription, *, quantity: int = 30, channel=None, **kw) -> Order:
    """Place and ship one order filling every item of ``prescription``."""
    order = order_place(
        clinic=world_clinic.clinic,
        patient=prescription.patient,
        lines=[
            LineSpec(product=item.product, quantity=quantity, prescription_item=item)
            for item in prescription.items.select_related("product")
        ],
        actor=world_clinic.staff,
        channel=channel or prescription.channel,
    )
    return order_ship(order=order, actor=world_clinic.staff, **kw)
