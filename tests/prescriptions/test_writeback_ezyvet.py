"""WriteBack to ezyVet, end to end against the emulator on a real socket: what the clinic's
ezyVet shows after each change in VetSync, and that nothing is lost or sent twice."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.core import mail
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from clinics.services import ezyvet_client
from prescriptions import writeback
from prescriptions.models import (
    Channel,
    ItemStatus,
    Prescription,
    WritebackAttempt,
    WritebackIncident,
    WritebackItem,
)
from prescriptions.services import (
    LineSpec,
    order_place,
    order_ship,
    prescription_approve,
    prescription_items_end,
)
from tests.conftest import World
from tests.factories import (
    ClientFactory,
    MembershipFactory,
    PatientFactory,
    UserFactory,
    VetFactory,
)
from tests.prescriptions.conftest import rx
from tests.prescriptions.writeback import (
    calls,
    clock_at,
    deliver_all,
    ezyvet_items,
    ezyvet_records,
    ship,
)

Status = WritebackItem.Status


# --- helpers of these tests ------------------------------------------------------------------


class Midpoint:
    """A jitter source that always picks the middle, so backoff steps can be asserted."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


class WorkerKilled(BaseException):
    """The worker process died (not an error the delivery code could catch)."""


class DiesAfterPosting:
    """A connector whose worker is killed right after ezyVet stored the POST."""

    def __init__(self, client) -> None:
        self.client = client

    def __getattr__(self, name: str):
        return getattr(self.client, name)

    def externalprescription_create(self, *args, **kwargs):
        self.client.externalprescription_create(*args, **kwargs)
        raise WorkerKilled


# --- the happy path --------------------------------------------------------------------------


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


def test_the_prescriber_in_ezyvet_is_the_vet_who_approved(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    other_user = UserFactory(username="alder-vet-2")
    MembershipFactory(user=other_user, clinic=world.a.clinic, role="vet")
    other_vet = VetFactory(clinic=world.a.clinic, user=other_user, pims_user_id="1")
    draft = rx(world.a, ezy_pet, catalogue.carprofen, approve=False)  # names world.a.vet
    assert world.a.vet.pims_user_id != "1"

    with django_capture_on_commit_callbacks(execute=True):
        prescription_approve(prescription=draft, actor=other_user)

    draft.refresh_from_db()
    assert draft.vet == other_vet
    (record,) = ezyvet_records(site, draft)
    assert record["prescribing_vet_user_id"] == "1"
    assert record["animal_id"] == ezy_pet.pims_id
    assert record["contact_id"] == ezy_pet.client.pims_id


# --- what is written back (DESIGN.md's table, end to end) ------------------------------------


@pytest.mark.parametrize(
    ("products", "channel", "sent"),
    [
        (["carprofen"], Channel.PORTAL, {"CARP-75"}),
        (["carprofen"], Channel.STORE, {"CARP-75"}),
        (["renal_diet"], Channel.PORTAL, {"RENAL-K9"}),
        (["dasuquin"], Channel.PORTAL, {"DASUQUIN-L"}),  # OTC in a treatment plan
        (["carprofen", "renal_diet"], Channel.ECONNECT, set()),
        (["compounded"], Channel.PORTAL, set()),
        (["carprofen", "compounded"], Channel.STORE, {"CARP-75"}),
    ],
)
def test_what_reaches_ezyvet_follows_the_writeback_table(
    world: World,
    site,
    ezy_pet,
    catalogue,
    django_capture_on_commit_callbacks,
    products,
    channel,
    sent,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        prescription = rx(
            world.a, ezy_pet, *(getattr(catalogue, p) for p in products), channel=channel
        )
    with django_capture_on_commit_callbacks(execute=True):
        ship(world.a, prescription)
    deliver_all(django_capture_on_commit_callbacks)

    if not sent:
        assert site.records("externalprescription") == []
        assert not WritebackItem.objects.exists()
        return
    items = ezyvet_items(site, prescription)
    assert set(items) == sent
    assert {i["status"] for i in items.values()} == {"CURRENT"}
    assert set(WritebackItem.objects.values_list("status", flat=True)) == {Status.DELIVERED}


def test_an_otc_product_outside_a_treatment_plan_is_not_written_back(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        order = order_place(
            clinic=world.a.clinic,
            patient=ezy_pet,
            lines=[LineSpec(product=catalogue.dasuquin, quantity=60)],
            actor=world.a.staff,
        )
        order_ship(order=order, actor=world.a.staff)
    deliver_all(django_capture_on_commit_callbacks)

    assert not WritebackItem.objects.exists()
    assert calls(site, "POST") == [] and calls(site, "PATCH") == []


def test_nothing_reaches_ezyvet_when_writeback_is_off(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    world.a.clinic.writeback_enabled = False
    world.a.clinic.save()

    with django_capture_on_commit_callbacks(execute=True):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen, catalogue.renal_diet)
    with django_capture_on_commit_callbacks(execute=True):
        ship(world.a, prescription)
        prescription_items_end(prescription=prescription, actor=world.a.vet_user, reason="Done")
    deliver_all(django_capture_on_commit_callbacks)

    assert not WritebackItem.objects.exists()
    assert site.records("externalprescription") == []


# --- never sent twice ------------------------------------------------------------------------


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
    prescription.refresh_from_db()
    assert prescription.pims_id == ezyvet_records(site, prescription)[0]["id"]


def test_a_lost_answer_to_a_dispense_patch_is_not_patched_again(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
    site.inject_fault("lost_write", endpoint="externalprescription", count=1)

    with django_capture_on_commit_callbacks(execute=True):
        ship(world.a, prescription)
    deliver_all(django_capture_on_commit_callbacks)

    item = ezyvet_items(site, prescription)["CARP-75"]
    assert (item["status"], item["remaining"]) == ("CURRENT", "60")
    assert len(calls(site, "PATCH")) == 1
    dispense = WritebackItem.objects.get(kind=WritebackItem.Kind.DISPENSE)
    assert dispense.status == Status.DELIVERED


def test_a_lost_answer_to_an_end_patch_is_not_patched_again(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
    site.inject_fault("lost_write", endpoint="externalprescription", count=1)

    with django_capture_on_commit_callbacks(execute=True):
        prescription_items_end(
            prescription=prescription, actor=world.a.vet_user, reason="Owner moved away"
        )
    deliver_all(django_capture_on_commit_callbacks)

    assert ezyvet_items(site, prescription)["CARP-75"]["status"] == "DECLINED_DR"
    # A second "decline" would have been refused (no longer Pending) and failed the row.
    assert len(calls(site, "PATCH")) == 1
    end = WritebackItem.objects.get(kind=WritebackItem.Kind.STATUS)
    assert (end.status, end.last_error) == (Status.DELIVERED, "")


def test_a_second_same_day_dispense_whose_patch_failed_still_reaches_ezyvet(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    # Two shipments on one day carry the same date_of_lastdispense: after an ambiguous failure
    # of the second PATCH, ezyVet must not be taken to show it already (remaining differs).
    with django_capture_on_commit_callbacks(execute=True):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
        ship(world.a, prescription)
    assert ezyvet_items(site, prescription)["CARP-75"]["remaining"] == "60"
    site.inject_fault("server_error", endpoint="externalprescription", count=1, status=502)

    with django_capture_on_commit_callbacks(execute=True):
        ship(world.a, prescription)
    deliver_all(django_capture_on_commit_callbacks)

    assert ezyvet_items(site, prescription)["CARP-75"]["remaining"] == "30"


# --- order, retries, dead letters ------------------------------------------------------------


def test_a_dispense_never_overtakes_the_post_it_follows(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    site.inject_fault("server_error", endpoint="externalprescription", count=1000, status=503)
    with django_capture_on_commit_callbacks(execute=True):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
    post = WritebackItem.objects.get(kind=WritebackItem.Kind.PRESCRIBE)
    assert post.status == Status.PENDING and post.attempts == 1

    with django_capture_on_commit_callbacks(execute=True):
        ship(world.a, prescription)
    dispense = WritebackItem.objects.get(kind=WritebackItem.Kind.DISPENSE)
    moment = timezone.now()
    for _ in range(2):  # the sweep runs while ezyVet is still down
        moment += dt.timedelta(hours=1)
        with clock_at(moment):
            assert writeback.writeback_due() == [post.pk]
            with django_capture_on_commit_callbacks(execute=True):
                writeback.writeback_deliver(item_id=post.pk)
                assert writeback.writeback_deliver(item_id=dispense.pk) is None
    dispense.refresh_from_db()
    assert (dispense.status, dispense.attempts) == (Status.PENDING, 0)
    assert calls(site, "PATCH") == []

    site.clear_faults()
    deliver_all(django_capture_on_commit_callbacks)

    post.refresh_from_db()
    dispense.refresh_from_db()
    assert post.status == dispense.status == Status.DELIVERED
    assert post.delivered_at <= dispense.delivered_at
    log = site.request_log()
    first_post = next(i for i, e in enumerate(log) if e["method"] == "POST" and e["status"] == 200)
    first_patch = next(i for i, e in enumerate(log) if e["method"] == "PATCH")
    assert first_post < first_patch
    item = ezyvet_items(site, prescription)["CARP-75"]
    assert (item["status"], item["remaining"]) == ("CURRENT", "60")


def test_a_429_is_retried_no_sooner_than_retry_after(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    site.inject_fault("rate_limit", endpoint="externalprescription", count=1, retry_after=30)
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)

    row = WritebackItem.objects.get()
    lookups = len(calls(site, "GET"))
    assert row.status == Status.PENDING
    assert row.next_attempt_at >= before + dt.timedelta(seconds=30)
    assert row.attempts_made.get().http_status == 429
    assert ezyvet_records(site, prescription) == []
    with clock_at(before + dt.timedelta(seconds=29)):
        assert writeback.writeback_due() == []
        assert writeback.writeback_deliver(item_id=row.pk) is None

    with clock_at(row.next_attempt_at + dt.timedelta(seconds=1)):
        assert writeback.writeback_due() == [row.pk]
        with django_capture_on_commit_callbacks(execute=True):
            writeback.writeback_deliver(item_id=row.pk)

    row.refresh_from_db()
    # Both tries are on record; the throttled one does not count towards giving up, and as
    # a 429 applies nothing, the second try posts without looking the reference up first.
    assert (row.status, row.attempts, row.attempts_made.count()) == (Status.DELIVERED, 1, 2)
    assert len(calls(site, "GET")) == lookups and len(calls(site, "POST")) == 2
    assert ezyvet_items(site, prescription)["CARP-75"]["status"] == "PENDING"


def test_a_throttled_row_is_not_given_up_on(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    site.inject_fault("rate_limit", endpoint="externalprescription", count=4, retry_after=1)
    with override_settings(WRITEBACK_MAX_ATTEMPTS=2):
        with django_capture_on_commit_callbacks(execute=True):
            prescription = rx(world.a, ezy_pet, catalogue.carprofen)
        deliver_all(django_capture_on_commit_callbacks)

    row = WritebackItem.objects.get()
    assert row.status == Status.DELIVERED
    assert row.attempts_made.filter(http_status=429).count() == 4
    assert ezyvet_items(site, prescription)["CARP-75"]["status"] == "PENDING"


@override_settings(WRITEBACK_BACKOFF_BASE=10, WRITEBACK_BACKOFF_MAX=1000)
def test_a_5xx_is_retried_with_a_growing_backoff(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    site.inject_fault("server_error", endpoint="externalprescription", count=1000, status=500)
    prescription = rx(world.a, ezy_pet, catalogue.carprofen)
    row = WritebackItem.objects.get()

    waits = []
    moment = timezone.now()
    for _ in range(3):
        with clock_at(moment):
            writeback.writeback_deliver(item_id=row.pk, rng=Midpoint())
        row.refresh_from_db()
        assert row.status == Status.PENDING
        assert "500" in row.last_error
        waits.append((row.next_attempt_at - moment).total_seconds())
        moment = row.next_attempt_at

    assert waits == [10, 20, 40]
    assert row.attempts == 3
    assert calls(site, "POST") and ezyvet_records(site, prescription) == []


@override_settings(WRITEBACK_MAX_ATTEMPTS=3)
def test_after_the_last_attempt_the_row_is_a_dead_letter_until_staff_retry(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    site.inject_fault("server_error", endpoint="externalprescription", count=1000, status=500)
    with django_capture_on_commit_callbacks(execute=True):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
        ship(world.a, prescription)
    deliver_all(django_capture_on_commit_callbacks)

    post = WritebackItem.objects.get(kind=WritebackItem.Kind.PRESCRIBE)
    dispense = WritebackItem.objects.get(kind=WritebackItem.Kind.DISPENSE)
    assert (post.status, post.attempts) == (Status.FAILED, 3)
    assert post.last_error.startswith("Gave up after 3 attempts.")
    assert list(post.attempts_made.values_list("outcome", flat=True)) == [
        WritebackAttempt.Outcome.RETRY,
        WritebackAttempt.Outcome.RETRY,
        WritebackAttempt.Outcome.FAILED,
    ]
    assert (dispense.status, dispense.attempts) == (Status.PENDING, 0)  # held behind the POST
    assert writeback.writeback_due(now=timezone.now() + dt.timedelta(days=7)) == []

    site.clear_faults()
    with django_capture_on_commit_callbacks(execute=True):
        retry = writeback.writeback_retry(item=post, actor=world.a.staff)
    deliver_all(django_capture_on_commit_callbacks)

    post.refresh_from_db()
    retry.refresh_from_db()
    dispense.refresh_from_db()
    assert post.status == Status.RETRIED
    assert retry.retry_of == post and retry.status == Status.DELIVERED
    assert dispense.status == Status.DELIVERED
    item = ezyvet_items(site, prescription)["CARP-75"]  # exactly one, despite it all
    assert item["status"] == "CURRENT"


def test_a_row_left_sending_by_a_dead_worker_is_delivered_once(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    prescription = rx(world.a, ezy_pet, catalogue.carprofen)  # its task message was lost
    row = WritebackItem.objects.get()

    with pytest.raises(WorkerKilled):
        writeback.writeback_deliver(
            item_id=row.pk,
            client_factory=lambda clinic: DiesAfterPosting(ezyvet_client(clinic.integration)),
        )
    row.refresh_from_db()
    assert row.status == Status.SENDING
    assert len(ezyvet_records(site, prescription)) == 1  # it landed; nobody knows yet
    assert writeback.writeback_due() == []  # another worker may still be on it

    later = row.claimed_until + dt.timedelta(seconds=1)
    with clock_at(later):
        assert writeback.writeback_due() == [row.pk]
        with django_capture_on_commit_callbacks(execute=True):
            writeback.writeback_deliver(item_id=row.pk)

    row.refresh_from_db()
    assert (row.status, row.attempts) == (Status.DELIVERED, 2)
    first = row.attempts_made.get(number=1)
    assert first.outcome == WritebackAttempt.Outcome.RETRY
    assert "worker stopped" in first.error
    assert len(ezyvet_records(site, prescription)) == 1
    assert len(calls(site, "POST")) == 1
    prescription.refresh_from_db()
    assert prescription.pims_id == ezyvet_records(site, prescription)[0]["id"]


# --- records not linked, incidents -----------------------------------------------------------


def unlinked_pet(world: World, name: str):
    owner = ClientFactory(clinic=world.a.clinic, pims_id="")
    return PatientFactory(client=owner, name=name, pims_id="")


def link(pet, site, index: int) -> None:
    """What the next sync does: the pet and its owner are matched to ezyVet's records."""
    animal = site.records("animal")[index]
    pet.client.pims_id = str(animal["contact_id"])
    pet.client.save()
    pet.pims_id = str(animal["id"])
    pet.save()


def test_a_pet_not_linked_to_ezyvet_fails_clearly_and_is_sent_once_linked(
    world: World, site, ezyvet_clinic, catalogue, django_capture_on_commit_callbacks
) -> None:
    pet = unlinked_pet(world, "Juniper")
    with django_capture_on_commit_callbacks(execute=True):
        prescription = rx(world.a, pet, catalogue.carprofen)

    row = WritebackItem.objects.get()
    assert row.status == Status.FAILED
    assert "the pet Juniper has no PIMS id" in row.last_error
    assert "its owner has no PIMS id" in row.last_error
    assert "then retry" in row.last_error
    assert calls(site, "POST") == []

    link(pet, site, 3)
    with django_capture_on_commit_callbacks(execute=True):
        retry = writeback.writeback_retry(item=row, actor=world.a.staff)

    retry.refresh_from_db()
    assert retry.status == Status.DELIVERED
    (record,) = ezyvet_records(site, prescription)
    assert record["animal_id"] == pet.pims_id
    assert record["contact_id"] == pet.client.pims_id


def test_one_alert_email_per_incident_and_a_new_one_after_recovery(
    world: World, site, ezyvet_clinic, catalogue, django_capture_on_commit_callbacks
) -> None:
    world.a.clinic.email = "frontdesk@alder.example"
    world.a.clinic.save()
    juniper, olive = unlinked_pet(world, "Juniper"), unlinked_pet(world, "Olive")

    with django_capture_on_commit_callbacks(execute=True):
        rx(world.a, juniper, catalogue.carprofen)
    with django_capture_on_commit_callbacks(execute=True):
        rx(world.a, olive, catalogue.apoquel)

    failed = list(WritebackItem.objects.filter(status=Status.FAILED).order_by("pk"))
    assert len(failed) == 2
    assert len(mail.outbox) == 1
    alert = mail.outbox[0]
    assert set(alert.to) == {"frontdesk@alder.example", settings.ONBOARDING_TEAM_EMAIL}
    assert "WriteBack to your practice system is failing" in alert.subject
    assert "Juniper has no PIMS id" in alert.body

    link(juniper, site, 3)
    link(olive, site, 4)
    with django_capture_on_commit_callbacks(execute=True):
        writeback.writeback_retry(item=failed[0], actor=world.a.staff)
    assert WritebackIncident.objects.get().closed_at is None  # Olive's still failed
    with django_capture_on_commit_callbacks(execute=True):
        writeback.writeback_retry(item=failed[1], actor=world.a.staff)
    assert WritebackIncident.objects.get().closed_at is not None
    assert len(mail.outbox) == 1

    with django_capture_on_commit_callbacks(execute=True):
        rx(world.a, unlinked_pet(world, "Pip"), catalogue.carprofen)

    assert WritebackIncident.objects.count() == 2
    assert len(mail.outbox) == 2
    assert "Pip has no PIMS id" in mail.outbox[1].body


def test_the_outbox_row_rolls_back_with_the_change(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    draft = rx(world.a, ezy_pet, catalogue.carprofen, approve=False)

    seen = []

    def approve_then_fail() -> None:
        with transaction.atomic():
            prescription_approve(prescription=draft, actor=world.a.vet_user)
            seen.extend(WritebackItem.objects.filter(prescription=draft))
            raise RuntimeError("the caller failed after the service")

    with (
        django_capture_on_commit_callbacks(execute=True) as published,
        pytest.raises(RuntimeError),
    ):
        approve_then_fail()

    assert len(seen) == 1  # the row existed inside the transaction

    draft.refresh_from_db()
    assert draft.state == Prescription.State.DRAFT
    assert not WritebackItem.objects.exists()
    assert published == []
    assert site.records("externalprescription") == []
