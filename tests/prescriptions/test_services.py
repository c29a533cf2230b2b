"""Prescriptions, orders and autoships through the services, as staff and vets meet them:
who may approve, every item status change allowed and refused (with the message staff see),
shipments, autoships, and what a deceased pet does to its open orders."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone

from clinics.models import AuditEvent
from prescriptions.models import (
    Autoship,
    ItemStatus,
    Order,
    Prescription,
    PrescriptionItem,
    WritebackItem,
)
from prescriptions.services import (
    ItemSpec,
    LineSpec,
    PrescriptionError,
    autoship_create,
    autoships_due,
    order_place,
    order_release,
    order_ship,
    prescription_approve,
    prescription_create,
    prescription_items_end,
)
from records.models import Patient
from tests.conftest import World
from tests.factories import (
    ClientFactory,
    MembershipFactory,
    PatientFactory,
    UserFactory,
    VetFactory,
)
from tests.prescriptions.conftest import rx
from tests.prescriptions.writeback import clock_at
from tests.records.batches import batch, ingest, owner, pet

LATER = "2026-11-25T09:00:00Z"


@pytest.fixture
def biscuit(world: World) -> Patient:
    return PatientFactory(client=ClientFactory(clinic=world.a.clinic), name="Biscuit")


def prescribe(world_clinic, patient, product, *, quantity: int = 30, refills: int = 0, **kw):
    return prescription_create(
        clinic=world_clinic.clinic,
        patient=patient,
        vet=world_clinic.vet,
        items=[
            ItemSpec(product=product, quantity=quantity, refills=refills, instructions="One daily")
        ],
        actor=world_clinic.vet_user,
        approve=True,
        **kw,
    )


def place(world_clinic, prescription, quantity: int = 30) -> Order:
    item = prescription.items.get()
    return order_place(
        clinic=world_clinic.clinic,
        patient=prescription.patient,
        lines=[LineSpec(product=item.product, quantity=quantity, prescription_item=item)],
        actor=world_clinic.staff,
    )


def status_of(prescription) -> str:
    return prescription.items.get().status


# --- who writes, who approves ----------------------------------------------------------------


def test_staff_draft_a_prescription_but_cannot_approve_it(world: World, biscuit, catalogue):
    draft = rx(world.a, biscuit, catalogue.carprofen, approve=False)
    assert (draft.state, draft.created_by) == (Prescription.State.DRAFT, world.a.staff)

    with pytest.raises(PrescriptionError, match="Only a vet of this clinic can approve"):
        prescription_approve(prescription=draft, actor=world.a.staff)

    draft.refresh_from_db()
    assert draft.state == Prescription.State.DRAFT
    assert draft.approved_at is None


def test_staff_cannot_write_an_approved_prescription_in_one_go(world: World, biscuit, catalogue):
    with pytest.raises(PrescriptionError, match="staff draft, a vet approves"):
        prescription_create(
            clinic=world.a.clinic,
            patient=biscuit,
            vet=world.a.vet,
            items=[ItemSpec(catalogue.carprofen, 30, 0, "One daily")],
            actor=world.a.staff,
            approve=True,
        )

    assert not Prescription.objects.exists()


def test_a_vet_of_another_clinic_cannot_approve(world: World, biscuit, catalogue):
    draft = rx(world.a, biscuit, catalogue.carprofen, approve=False)

    with pytest.raises(PrescriptionError, match="Only a vet of this clinic"):
        prescription_approve(prescription=draft, actor=world.b.vet_user)

    draft.refresh_from_db()
    assert draft.state == Prescription.State.DRAFT


def test_a_vet_approves_and_becomes_the_prescriber(world: World, biscuit, catalogue):
    second_user = UserFactory(username="alder-vet-2")
    MembershipFactory(user=second_user, clinic=world.a.clinic, role="vet")
    second_vet = VetFactory(clinic=world.a.clinic, user=second_user)
    draft = rx(world.a, biscuit, catalogue.carprofen, approve=False)
    assert draft.vet == world.a.vet

    prescription_approve(prescription=draft, actor=second_user)

    draft.refresh_from_db()
    assert draft.state == Prescription.State.APPROVED
    assert (draft.vet, draft.approved_by) == (second_vet, second_user)
    assert draft.approved_at is not None
    assert status_of(draft) == ItemStatus.PENDING
    assert AuditEvent.objects.filter(
        action="prescription.approved", actor=second_user, object_id=str(draft.pk)
    ).exists()


def test_an_approved_prescription_cannot_be_approved_again(world: World, biscuit, catalogue):
    prescription = rx(world.a, biscuit, catalogue.carprofen)

    with pytest.raises(PrescriptionError, match="is approved, not a draft"):
        prescription_approve(prescription=prescription, actor=world.a.vet_user)


def test_a_draft_cannot_be_ordered_from(world: World, biscuit, catalogue):
    draft = rx(world.a, biscuit, catalogue.carprofen, approve=False)

    with pytest.raises(PrescriptionError, match="is not approved yet"):
        place(world.a, draft)


# --- item statuses ---------------------------------------------------------------------------


def test_a_shipment_makes_a_pending_item_current(world: World, biscuit, catalogue):
    prescription = rx(world.a, biscuit, catalogue.carprofen)  # 30 x (2 refills + 1)
    assert status_of(prescription) == ItemStatus.PENDING

    order_ship(order=place(world.a, prescription), actor=world.a.staff)
    item = prescription.items.get()
    assert (item.status, item.dispensed_quantity, item.remaining) == (ItemStatus.CURRENT, 30, 60)
    assert item.last_dispensed_at is not None

    order_ship(order=place(world.a, prescription), actor=world.a.staff)
    item.refresh_from_db()
    assert (item.status, item.remaining) == (ItemStatus.CURRENT, 30)


def test_only_placed_orders_ship(world: World, biscuit, catalogue):
    prescription = rx(world.a, biscuit, catalogue.carprofen)
    order = order_ship(order=place(world.a, prescription), actor=world.a.staff)

    with pytest.raises(PrescriptionError, match="is shipped; it cannot ship"):
        order_ship(order=order, actor=world.a.staff)
    assert prescription.items.get().dispensed_quantity == 30


@pytest.mark.parametrize("status", [ItemStatus.DECLINED_DR, ItemStatus.DECLINED_CLIENT])
def test_a_pending_item_can_be_declined(world: World, biscuit, catalogue, status):
    prescription = rx(world.a, biscuit, catalogue.carprofen)

    prescription_items_end(
        prescription=prescription, actor=world.a.vet_user, reason="Owner declined", status=status
    )

    item = prescription.items.get()
    assert (item.status, item.end_reason) == (status, "Owner declined")


@pytest.mark.parametrize("status", [ItemStatus.DECLINED_DR, ItemStatus.DECLINED_CLIENT])
def test_a_dispensed_item_cannot_be_declined(world: World, biscuit, catalogue, status):
    prescription = rx(world.a, biscuit, catalogue.carprofen)
    order_ship(order=place(world.a, prescription), actor=world.a.staff)

    with pytest.raises(PrescriptionError) as refused:
        prescription_items_end(
            prescription=prescription, actor=world.a.vet_user, reason="x", status=status
        )

    assert str(refused.value) == (
        "Carprofen 75 mg chewable: Only a pending item (never dispensed) can be declined; "
        "a dispensed item is cancelled instead."
    )
    assert status_of(prescription) == ItemStatus.CURRENT


@pytest.mark.parametrize("status", [ItemStatus.CANCELLED_DR, ItemStatus.CANCELLED_CLIENT])
def test_a_dispensed_item_can_be_cancelled(world: World, biscuit, catalogue, status):
    prescription = rx(world.a, biscuit, catalogue.carprofen)
    order_ship(order=place(world.a, prescription), actor=world.a.staff)

    prescription_items_end(
        prescription=prescription, actor=world.a.vet_user, reason="Side effects", status=status
    )

    assert status_of(prescription) == status


@pytest.mark.parametrize("status", [ItemStatus.CANCELLED_DR, ItemStatus.CANCELLED_CLIENT])
def test_a_pending_item_cannot_be_cancelled(world: World, biscuit, catalogue, status):
    prescription = rx(world.a, biscuit, catalogue.carprofen)

    with pytest.raises(PrescriptionError) as refused:
        prescription_items_end(
            prescription=prescription, actor=world.a.vet_user, reason="x", status=status
        )

    assert str(refused.value) == (
        "Carprofen 75 mg chewable: Only a dispensed item can be cancelled; "
        "an item never dispensed is declined instead."
    )
    assert status_of(prescription) == ItemStatus.PENDING


@pytest.mark.parametrize("status", [ItemStatus.PENDING, ItemStatus.CURRENT])
def test_an_end_cannot_set_pending_or_current(world: World, biscuit, catalogue, status):
    prescription = rx(world.a, biscuit, catalogue.carprofen)

    with pytest.raises(PrescriptionError, match="becomes Current only by a dispense"):
        prescription_items_end(
            prescription=prescription, actor=world.a.vet_user, reason="x", status=status
        )
    assert status_of(prescription) == ItemStatus.PENDING


def test_ending_without_a_status_declines_or_cancels_as_fits(world: World, biscuit, catalogue):
    prescription = prescription_create(
        clinic=world.a.clinic,
        patient=biscuit,
        vet=world.a.vet,
        items=[
            ItemSpec(catalogue.carprofen, 30, 1, "One daily"),
            ItemSpec(catalogue.apoquel, 30, 1, "One daily"),
        ],
        actor=world.a.vet_user,
        approve=True,
    )
    carprofen = prescription.items.get(product=catalogue.carprofen)
    order_ship(
        order=order_place(
            clinic=world.a.clinic,
            patient=biscuit,
            lines=[LineSpec(catalogue.carprofen, 30, carprofen)],
            actor=world.a.staff,
        ),
        actor=world.a.staff,
    )

    prescription_items_end(prescription=prescription, actor=world.a.vet_user, reason="Stop all")

    statuses = dict(prescription.items.values_list("product__sku", "status"))
    assert statuses == {"CARP-75": ItemStatus.CANCELLED_DR, "APOQ-16": ItemStatus.DECLINED_DR}


def test_an_ended_prescription_cannot_be_ended_again(world: World, biscuit, catalogue):
    prescription = rx(world.a, biscuit, catalogue.carprofen)
    prescription_items_end(prescription=prescription, actor=world.a.vet_user, reason="Stop")

    with pytest.raises(PrescriptionError, match="already ended"):
        prescription_items_end(prescription=prescription, actor=world.a.vet_user, reason="Again")
    with pytest.raises(PrescriptionError, match="already ended"):
        prescription_items_end(
            prescription=prescription,
            actor=world.a.vet_user,
            reason="Again",
            items=list(prescription.items.all()),
        )


def test_an_end_needs_a_reason(world: World, biscuit, catalogue):
    prescription = rx(world.a, biscuit, catalogue.carprofen)

    with pytest.raises(PrescriptionError, match="Say why"):
        prescription_items_end(prescription=prescription, actor=world.a.vet_user, reason="  ")
    assert status_of(prescription) == ItemStatus.PENDING


def test_an_ended_item_cannot_be_ordered(world: World, biscuit, catalogue):
    prescription = rx(world.a, biscuit, catalogue.carprofen)
    prescription_items_end(prescription=prescription, actor=world.a.vet_user, reason="Stop")

    with pytest.raises(PrescriptionError, match=r"Carprofen 75 mg chewable on RX-\d+ has ended"):
        place(world.a, prescription)
    assert not Order.objects.exists()


def test_an_order_placed_before_the_item_ended_goes_on_hold_and_cannot_ship(
    world: World, biscuit, catalogue
):
    prescription = rx(world.a, biscuit, catalogue.carprofen)
    order = place(world.a, prescription)
    prescription_items_end(prescription=prescription, actor=world.a.vet_user, reason="Stop")

    order.refresh_from_db()
    assert order.status == Order.Status.ON_HOLD
    assert order.hold_reason == "The prescription item ended: Stop"
    with pytest.raises(PrescriptionError, match="is on hold: The prescription item ended"):
        order_ship(order=order, actor=world.a.staff)
    # Released by mistake, it still cannot dispense the ended item.
    order_release(order=order, actor=world.a.staff)
    with pytest.raises(PrescriptionError) as refused:
        order_ship(order=order, actor=world.a.staff)
    assert str(refused.value) == (
        "Carprofen 75 mg chewable: This item is declined by the vet: "
        "an ended item cannot be dispensed."
    )
    item = prescription.items.get()
    assert (item.status, item.dispensed_quantity) == (ItemStatus.DECLINED_DR, 0)


def test_no_more_is_dispensed_than_was_prescribed(world: World, biscuit, catalogue):
    prescription = prescribe(world.a, biscuit, catalogue.carprofen, quantity=30, refills=0)
    first = place(world.a, prescription)
    try:
        second = place(world.a, prescription)
    except PrescriptionError:
        second = None  # refusing the second order is fine too
    order_ship(order=first, actor=world.a.staff)

    if second is not None:
        with pytest.raises(PrescriptionError, match="left"):
            order_ship(order=second, actor=world.a.staff)

    item = prescription.items.get()
    assert item.dispensed_quantity == 30  # 30 prescribed, never 60 shipped


# --- the outbox commits with the change ------------------------------------------------------


def test_a_shipment_and_its_writeback_roll_back_together(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
    order = place(world.a, prescription)

    seen = []

    def ship_then_fail() -> None:
        with transaction.atomic():
            order_ship(order=order, actor=world.a.staff)
            seen.extend(WritebackItem.objects.filter(kind=WritebackItem.Kind.DISPENSE))
            raise RuntimeError("the caller failed after the service")

    with (
        django_capture_on_commit_callbacks(execute=True) as published,
        pytest.raises(RuntimeError),
    ):
        ship_then_fail()

    assert len(seen) == 1  # the row existed inside the transaction

    order.refresh_from_db()
    assert order.status == Order.Status.PLACED
    assert status_of(prescription) == ItemStatus.PENDING
    assert not WritebackItem.objects.filter(kind=WritebackItem.Kind.DISPENSE).exists()
    assert published == []
    (record,) = site.records("externalprescription")
    assert record["external_prescription_item_list"][0]["status"] == "PENDING"


def test_a_shipment_commits_with_its_writeback(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)

    with django_capture_on_commit_callbacks(execute=True):
        order = order_ship(order=place(world.a, prescription), actor=world.a.staff)

    row = WritebackItem.objects.get(kind=WritebackItem.Kind.DISPENSE)
    assert row.order == order
    assert row.status == WritebackItem.Status.DELIVERED
    (record,) = site.records("externalprescription")
    assert record["external_prescription_item_list"][0]["status"] == "CURRENT"


# --- autoship --------------------------------------------------------------------------------


def test_autoship_places_an_order_when_due_and_then_waits_its_interval(
    world: World, biscuit, catalogue
):
    prescription = rx(world.a, biscuit, catalogue.carprofen)
    today = timezone.localdate()
    autoship = autoship_create(
        item=prescription.items.get(), actor=world.a.staff, interval_days=30, first_on=today
    )

    assert autoships_due(today=today) == 1
    assert autoships_due(today=today) == 0  # not twice

    order = Order.objects.get()
    assert (order.autoship, order.patient, order.status) == (autoship, biscuit, "placed")
    assert [(line.product, line.quantity) for line in order.lines.all()] == [
        (catalogue.carprofen, 30)
    ]
    autoship.refresh_from_db()
    assert autoship.next_order_on == today + dt.timedelta(days=30)
    assert autoship.status == Autoship.Status.ACTIVE


def test_autoship_goes_on_hold_when_the_prescription_ran_out(world: World, biscuit, catalogue):
    prescription = prescribe(world.a, biscuit, catalogue.carprofen, quantity=30, refills=0)
    today = timezone.localdate()
    autoship = autoship_create(
        item=prescription.items.get(), actor=world.a.staff, interval_days=30, first_on=today
    )
    autoships_due(today=today)
    order_ship(order=Order.objects.get(), actor=world.a.staff)

    placed = autoships_due(today=today + dt.timedelta(days=30))

    assert placed == 0
    assert Order.objects.count() == 1
    autoship.refresh_from_db()
    assert autoship.status == Autoship.Status.ON_HOLD
    assert "has 0 of Carprofen 75 mg chewable left" in autoship.hold_reason


def test_autoship_goes_on_hold_when_the_prescription_expired(world: World, biscuit, catalogue):
    today = world.a.clinic.localdate()
    prescription = rx(
        world.a, biscuit, catalogue.carprofen, expires_on=today + dt.timedelta(days=20)
    )
    autoship = autoship_create(
        item=prescription.items.get(),
        actor=world.a.staff,
        interval_days=30,
        first_on=today + dt.timedelta(days=30),
    )

    with clock_at(timezone.now() + dt.timedelta(days=30)):
        assert autoships_due() == 0

    autoship.refresh_from_db()
    assert autoship.status == Autoship.Status.ON_HOLD
    assert "expired" in autoship.hold_reason
    assert not Order.objects.exists()


def test_ending_the_item_ends_its_autoship(world: World, biscuit, catalogue):
    prescription = rx(world.a, biscuit, catalogue.carprofen)
    autoship = autoship_create(item=prescription.items.get(), actor=world.a.staff)

    prescription_items_end(prescription=prescription, actor=world.a.vet_user, reason="Stop")

    autoship.refresh_from_db()
    assert autoship.status == Autoship.Status.ENDED
    assert autoships_due(today=timezone.localdate() + dt.timedelta(days=60)) == 0
    assert not Order.objects.exists()


# --- a deceased pet --------------------------------------------------------------------------


def test_a_pet_reported_deceased_by_a_sync_puts_its_orders_and_autoship_on_hold(
    world: World, catalogue
):
    ingest(world.a.clinic, batch(owner(patients=[pet("P-1"), pet("P-2", name="Luna")])))
    biscuit = Patient.objects.get(pims_id="P-1")
    luna = Patient.objects.get(pims_id="P-2")
    prescription = rx(world.a, biscuit, catalogue.carprofen)
    order = place(world.a, prescription)
    autoship = autoship_create(item=prescription.items.get(), actor=world.a.staff)
    lunas_order = place(world.a, rx(world.a, luna, catalogue.apoquel))

    ingest(
        world.a.clinic,
        batch(
            owner(
                patients=[
                    pet("P-1", deceased=True, deceased_on="2026-11-20", modified_at=LATER),
                    pet("P-2", name="Luna"),
                ]
            )
        ),
    )

    order.refresh_from_db()
    autoship.refresh_from_db()
    lunas_order.refresh_from_db()
    assert order.status == Order.Status.ON_HOLD
    assert "deceased" in order.hold_reason
    assert autoship.status == Autoship.Status.ON_HOLD
    assert "deceased" in autoship.hold_reason
    assert lunas_order.status == Order.Status.PLACED  # the other pet carries on
    with pytest.raises(PrescriptionError, match="on hold"):
        order_ship(order=order, actor=world.a.staff)
    with pytest.raises(PrescriptionError, match="recorded as deceased"):
        order_release(order=order, actor=world.a.staff)
    assert autoships_due(today=timezone.localdate() + dt.timedelta(days=60)) == 0
    assert prescription.items.get().dispensed_quantity == 0
    assert PrescriptionItem.objects.filter(status=ItemStatus.CURRENT).count() == 0


def test_an_order_posted_twice_with_one_submission_id_is_placed_once(
    world: World, biscuit, catalogue
):
    import uuid

    prescription = rx(world.a, biscuit, catalogue.carprofen)
    item = prescription.items.get()
    submission = uuid.uuid4()

    orders = [
        order_place(
            clinic=world.a.clinic,
            patient=biscuit,
            lines=[LineSpec(product=item.product, quantity=30, prescription_item=item)],
            actor=world.a.staff,
            submission_id=submission,
        )
        for _ in range(2)
    ]

    assert orders[0] == orders[1] and Order.objects.count() == 1
