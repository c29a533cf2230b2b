"""WriteBack to ezyVet, the cases review found: slow workers and expired leases, rows that
starve others, the unforeseen error, eConnect dispenses, alerts whose email failed, a shared
token, a lost answer whose lookup was throttled, the sweep."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from celery.exceptions import Retry
from django.conf import settings
from django.core import mail
from django.utils import timezone

from clinics.services import ezyvet_client
from prescriptions import writeback
from prescriptions.models import (
    Channel,
    ItemStatus,
    WritebackAttempt,
    WritebackIncident,
    WritebackItem,
)
from prescriptions.services import (
    prescription_items_end,
)
from prescriptions.writeback import incidents, outbox
from tests.conftest import World
from tests.prescriptions.conftest import rx
from tests.prescriptions.writeback import (
    calls,
    clock_at,
    deliver_all,
    ezyvet_items,
    ezyvet_records,
    ship,
)
from vetsync.pims import ezyvet

Status = WritebackItem.Status


# --- found in review: slow workers, starvation, the unforeseen, eConnect, alerts --------------


class SlowPast:
    """A connector whose call outlives the row's lease: meanwhile another worker takes over."""

    def __init__(self, client, meanwhile) -> None:
        self.client, self.meanwhile = client, meanwhile

    def __getattr__(self, name: str):
        return getattr(self.client, name)

    def externalprescription_create(self, *args, **kwargs):
        self.meanwhile()
        raise ezyvet.EzyVetUnavailable("read timed out")


def test_a_worker_whose_lease_ran_out_does_not_undo_the_one_that_took_over(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    with mock.patch.object(outbox, "_deliver_on_commit"):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
    row = WritebackItem.objects.get()

    def second_worker() -> None:
        with clock_at(timezone.now() + settings.WRITEBACK_LEASE + dt.timedelta(seconds=1)):
            writeback.writeback_deliver(item_id=row.pk)

    result = writeback.writeback_deliver(
        item_id=row.pk,
        client_factory=lambda clinic: SlowPast(ezyvet_client(clinic.integration), second_worker),
    )

    assert result is not None and result.outcome == "superseded"
    row.refresh_from_db()
    assert row.status == Status.DELIVERED and row.delivered_at is not None
    assert len(ezyvet_records(site, prescription)) == 1


def test_rows_waiting_behind_a_failed_one_do_not_crowd_out_due_rows(
    world: World, site, ezy_pet, catalogue
) -> None:
    with mock.patch.object(outbox, "_deliver_on_commit"):
        stuck = rx(world.a, ezy_pet, catalogue.carprofen)
        for _ in range(3):
            ship(world.a, stuck)
        free = rx(world.a, ezy_pet, catalogue.apoquel)
    WritebackItem.objects.filter(prescription=stuck, kind="prescribe").update(status=Status.FAILED)
    WritebackItem.objects.filter(prescription=free).update(
        next_attempt_at=timezone.now() + dt.timedelta(minutes=5)
    )

    with clock_at(timezone.now() + dt.timedelta(minutes=6)):
        due = writeback.writeback_due(limit=2)

    assert due == [WritebackItem.objects.get(prescription=free).pk]


def test_an_unforeseen_error_is_recorded_and_retried_not_left_sending(
    world: World, site, ezy_pet, catalogue
) -> None:
    with mock.patch.object(outbox, "_deliver_on_commit"):
        rx(world.a, ezy_pet, catalogue.carprofen)
    row = WritebackItem.objects.get()

    def broken(clinic):
        raise LookupError("credentials key rotated away")

    writeback.writeback_deliver(item_id=row.pk, client_factory=broken)

    row.refresh_from_db()
    assert row.status == Status.PENDING
    assert "credentials key rotated away" in row.last_error
    assert row.attempts_made.get().outcome == WritebackAttempt.Outcome.RETRY


def test_an_item_dispensed_through_econnect_is_declined_in_ezyvet_when_it_ends(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
        ship(world.a, prescription, channel=Channel.ECONNECT)  # not written back
        prescription_items_end(prescription=prescription, actor=world.a.vet_user, reason="Done")
    deliver_all(django_capture_on_commit_callbacks)

    assert prescription.items.get().status == ItemStatus.CANCELLED_DR  # VetSync's own record
    # ezyVet never heard of the eConnect dispense: for it the item ends before any dispense.
    assert ezyvet_items(site, prescription)["CARP-75"]["status"] == "DECLINED_DR"
    assert set(WritebackItem.objects.values_list("status", flat=True)) == {Status.DELIVERED}


def test_a_failed_row_can_be_dismissed_and_frees_the_rows_after_it(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    ezy_pet.pims_id = ""
    ezy_pet.save()
    with django_capture_on_commit_callbacks(execute=True):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
    failed = WritebackItem.objects.get()
    assert failed.status == Status.FAILED
    with pytest.raises(writeback.DismissError, match="Say why"):
        writeback.writeback_dismiss(item=failed, actor=world.a.staff, reason=" ")

    with django_capture_on_commit_callbacks(execute=True):
        writeback.writeback_dismiss(
            item=failed, actor=world.a.staff, reason="Entered in ezyVet by hand"
        )

    failed.refresh_from_db()
    assert failed.status == Status.DISMISSED
    assert "Entered in ezyVet by hand" in failed.last_error
    assert WritebackIncident.objects.get().closed_at is not None
    assert prescription.writebacks.count() == 1


def test_an_alert_whose_email_failed_is_sent_by_a_later_run(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    ezy_pet.pims_id = ""
    ezy_pet.save()
    # The task retries itself on a mail error (eagerly, here: celery's Retry).
    with (
        mock.patch.object(incidents.EmailMessage, "send", side_effect=OSError("SMTP down")),
        pytest.raises((OSError, Retry)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        rx(world.a, ezy_pet, catalogue.carprofen)
    incident = WritebackIncident.objects.get()
    assert incident.alerted_at is None and mail.outbox == []

    with clock_at(timezone.now() + dt.timedelta(minutes=2)):
        assert writeback.incidents_unalerted() == [incident.pk]
    assert writeback.writeback_incident_alert(incident_id=incident.pk) is True
    assert writeback.writeback_incident_alert(incident_id=incident.pk) is False
    assert len(mail.outbox) == 1


def test_workers_share_one_ezyvet_token_instead_of_revoking_each_others(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    """ezyVet keeps one live token per credentials: two worker processes (two connectors)
    take the token the first fetched from the shared cache."""
    first = ezyvet_client(ezyvet_clinic_integration(world))
    second = ezyvet_client(ezyvet_clinic_integration(world))

    token = first.access_token()
    assert second.access_token() == token and second.token_requests == 0
    # A refused token is dropped for everyone; the next call fetches one fresh token.
    fetched = first.token_requests
    first._token_refused()
    second._token_refused()
    assert first.access_token() == second.access_token() != token
    assert first.token_requests + second.token_requests == fetched + 1


def ezyvet_clinic_integration(world: World):
    integration = world.a.clinic.integration
    integration.refresh_from_db()
    return integration


def test_a_lost_post_whose_lookup_was_throttled_is_looked_up_not_posted_again(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    """Found by the soak: the POST landed but its answer was lost, and the lookup that
    followed was answered 429. The throttled attempt does not count towards giving up, but
    it still happened: the next attempt looks the reference up before posting."""
    site.inject_fault("lost_write", endpoint="externalprescription", count=1)
    site.inject_fault("rate_limit", endpoint="externalprescription", count=1, retry_after=1)
    with django_capture_on_commit_callbacks(execute=True):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
    deliver_all(django_capture_on_commit_callbacks)

    assert len(ezyvet_records(site, prescription)) == 1
    assert len(calls(site, "POST")) == 1
    assert WritebackItem.objects.get().status == Status.DELIVERED


def test_an_end_refused_because_it_was_already_applied_is_delivered(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    """The end PATCH landed, its answer was lost and the read-back was throttled: the next
    PATCH is refused ("only dispensed items can be cancelled"), which ezyVet's record shows
    is because it is cancelled already."""
    with django_capture_on_commit_callbacks(execute=True):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
        ship(world.a, prescription)
    deliver_all(django_capture_on_commit_callbacks)
    site.inject_fault("lost_write", endpoint="externalprescription", count=1)
    site.inject_fault("rate_limit", endpoint="externalprescription", count=1, retry_after=1)
    with django_capture_on_commit_callbacks(execute=True):
        prescription_items_end(prescription=prescription, actor=world.a.vet_user, reason="Done")
    deliver_all(django_capture_on_commit_callbacks)

    assert ezyvet_items(site, prescription)["CARP-75"]["status"] == "CANCELLED_DR"
    assert set(WritebackItem.objects.values_list("status", flat=True)) == {Status.DELIVERED}


def test_the_sweep_leaves_a_new_row_to_its_own_message_then_makes_up_for_a_lost_one(
    world: World, site, ezy_pet, catalogue
) -> None:
    with mock.patch.object(outbox, "_deliver_on_commit"):  # the message is lost
        rx(world.a, ezy_pet, catalogue.carprofen)
    row = WritebackItem.objects.get()

    assert writeback.writeback_due() == []  # its message may still be in the queue
    with clock_at(row.created_at + writeback.SWEEP_GRACE + dt.timedelta(seconds=1)):
        assert writeback.writeback_due() == [row.pk]
