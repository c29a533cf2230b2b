"""Runs: idempotent, resumable, one at a time, and a bad record never stops the rest."""

from __future__ import annotations

import datetime as dt
import gc
import sys
import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from records.models import Client, ManualUpdate, Outcome, Patient, SyncLock, SyncRun
from records.sync import SyncBusy, sync_run_create, sync_run_process, sync_runs_due
from tests.conftest import World
from tests.factories import ClientFactory
from tests.records.batches import Killed, batch, ingest, killed_after_chunks, owner, pet


def state(clinic) -> list[tuple]:
    """What staff would see of a clinic's records, independent of database ids."""
    clients = sorted(
        (c.pims_id, c.first_name, c.last_name, c.email, c.address_line1, c.customer_ref)
        for c in Client.objects.filter(clinic=clinic)
    )
    patients = sorted(
        (p.pims_id, p.client.pims_id, p.name, str(p.weight), p.is_deceased, p.weights.count())
        for p in Patient.objects.filter(clinic=clinic)
    )
    return [clients, patients]


def many(n: int, **fields) -> list[dict]:
    return [
        owner(
            f"C-{i}",
            first_name=f"Name{i}",
            email=f"c{i}@example.org",
            patients=[pet(f"P-{i}", name=f"Pet{i}")],
            **fields,
        )
        for i in range(n)
    ]


def test_the_same_batch_twice_changes_nothing_the_second_time(world: World) -> None:
    body = batch(*many(3), batch_id="agent-0001")
    first = ingest(world.a.clinic, body)
    before = state(world.a.clinic)

    again, created = sync_run_create(clinic=world.a.clinic, body=body, trigger="agent")

    assert not created and again.pk == first.pk
    assert sync_run_process(run_id=again.pk).counts == first.counts
    assert state(world.a.clinic) == before
    assert SyncRun.objects.count() == 1


def test_a_stored_batch_is_not_kept_in_memory_by_its_run(world: World) -> None:
    """A first copy's text is 70 MB: once stored, the process that received it lets it go
    (a payload cached on its run would hold it in a reference cycle until a collection)."""
    body = batch(*many(3))
    before = sys.getrefcount(body)
    gc.disable()
    try:
        run, created = sync_run_create(clinic=world.a.clinic, body=body, trigger="agent")
        del run

        assert created and sys.getrefcount(body) == before
    finally:
        gc.enable()


def test_the_same_records_in_a_new_batch_are_all_unchanged(world: World) -> None:
    ingest(world.a.clinic, batch(*many(3)))
    run = ingest(world.a.clinic, batch(*many(3)))
    assert run.counts == {"unchanged": 6}


def test_a_bad_record_is_quarantined_and_the_rest_applied(world: World) -> None:
    bad = [
        owner("", first_name="NoId"),
        owner("C-date", patients=[pet("P-date", birth_date="02/04/2019")]),
        owner("C-weight", patients=[pet("P-weight", weight=-3)]),
        owner("C-long", last_name="x" * 101),
        owner("C-type", patients=[pet("P-type", weight="heavy")]),
        owner("C-flag", active="yes"),
    ]
    run = ingest(world.a.clinic, batch(*many(2), *bad))

    assert run.status == "succeeded"
    reasons = dict(
        run.outcomes.filter(outcome=Outcome.QUARANTINED).values_list("pims_id", "detail")
    )
    assert reasons[""] == "pims_id is missing."
    assert "birth_date is not a date" in reasons["P-date"]
    assert "weight cannot be negative" in reasons["P-weight"]
    assert "last_name is longer than 100 characters" in reasons["C-long"]
    assert "weight must be a number" in reasons["P-type"]
    assert "active must be true or false" in reasons["C-flag"]
    # The good parts are in: two whole clients, and the owners of the bad pets.
    assert set(Client.objects.values_list("pims_id", flat=True)) == {
        "C-0",
        "C-1",
        "C-date",
        "C-weight",
        "C-type",
    }
    # Six bad records, and the pets of the three bad owners go with them.
    assert run.counts["quarantined"] == 9


def test_quarantined_records_can_be_retried_once_fixed_upstream(world: World) -> None:
    from records.sync import sync_run_retry_quarantined

    run = ingest(world.a.clinic, batch(owner("C-9", patients=[pet("P-9", weight=-1)])))
    retry = sync_run_retry_quarantined(run=run, actor=world.a.staff)
    assert retry is not None
    done = sync_run_process(run_id=retry.pk)

    # Still bad, still quarantined, and visible on the new run; nothing retried twice.
    assert done.counts == {"unchanged": 1, "quarantined": 1}
    assert sync_run_retry_quarantined(run=run, actor=world.a.staff) is None


def test_a_big_run_spares_its_records_from_collections_and_gives_them_back(
    world: World,
) -> None:
    """While a run of several chunks writes, the collector skips the records it read (they
    hold no cycle and live as long as the run); a run that dies gives them back all the same."""
    frozen_during: list[int] = []
    before = gc.get_freeze_count()

    def progress(position: int, total: int) -> None:
        frozen_during.append(gc.get_freeze_count())
        killed_after_chunks(1)(position, total)

    run, _ = sync_run_create(clinic=world.a.clinic, body=batch(*many(12)), trigger="agent")
    with pytest.raises(Killed):
        sync_run_process(run_id=run.pk, chunk_size=5, on_progress=progress)

    assert frozen_during and frozen_during[0] > before
    assert gc.get_freeze_count() == before and gc.isenabled()


def test_chunks_are_as_big_as_the_database_writes_best(world: World) -> None:
    """SQLite logs each changed page at every commit: its chunks are 5,000 clients, not 1,000."""
    commits: list[int] = []
    run, _ = sync_run_create(clinic=world.a.clinic, body=batch(*many(1001)), trigger="agent")

    done = sync_run_process(run_id=run.pk, on_progress=lambda position, _: commits.append(position))

    assert done.status == "succeeded"
    assert commits == ([1001] if connection.vendor == "sqlite" else [1000, 1001])


def test_a_killed_run_resumes_to_the_same_state_as_an_uninterrupted_one(world: World) -> None:
    clients = many(12)
    body_a = batch(*clients, batch_id="same")
    body_b = batch(*clients, batch_id="same")
    ingest(world.b.clinic, body_b, chunk_size=5)

    run, _ = sync_run_create(clinic=world.a.clinic, body=body_a, trigger="agent")
    with pytest.raises(Killed):
        sync_run_process(run_id=run.pk, chunk_size=5, on_progress=killed_after_chunks(2))
    run.refresh_from_db()
    assert (run.status, run.position) == ("running", 10)

    # The dead worker's lease runs out; the sweep finds the run and finishes it.
    assert run.pk not in sync_runs_due()
    SyncLock.objects.filter(clinic=world.a.clinic).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert run.pk in sync_runs_due()
    finished = sync_run_process(run_id=run.pk, chunk_size=5)

    assert finished.status == "succeeded"
    assert state(world.a.clinic) == state(world.b.clinic)
    assert finished.counts == {"created": 24}
    assert finished.outcomes.count() == 24


def test_a_crash_mid_chunk_applies_nothing_of_that_chunk(world: World, monkeypatch) -> None:
    from records.models import SyncRecordOutcome
    from records.sync import chunk

    run, _ = sync_run_create(clinic=world.a.clinic, body=batch(*many(8)), trigger="agent")
    real = chunk._insert
    calls = {"n": 0}

    def fail_second_outcomes(inserter):
        # The clients and pets of the chunk are already inserted when this fails.
        if inserter.model is SyncRecordOutcome:
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("database went away")
        return real(inserter)

    monkeypatch.setattr(chunk, "_insert", fail_second_outcomes)
    with pytest.raises(RuntimeError):
        sync_run_process(run_id=run.pk, chunk_size=4)
    run.refresh_from_db()

    assert (run.status, run.position) == ("failed", 4)
    assert "database went away" in run.error
    assert Client.objects.count() == 4  # the failed chunk left no client behind
    monkeypatch.undo()
    from records.sync import sync_run_resume

    sync_run_resume(run=run)
    assert sync_run_process(run_id=run.pk, chunk_size=4).status == "succeeded"
    assert Client.objects.count() == 8


def test_one_sync_at_a_time_per_clinic(world: World) -> None:
    first, _ = sync_run_create(clinic=world.a.clinic, body=batch(*many(1)), trigger="agent")
    second, _ = sync_run_create(clinic=world.a.clinic, body=batch(*many(1)), trigger="agent")
    SyncLock.objects.create(
        clinic=world.a.clinic, run=first, expires_at=timezone.now() + dt.timedelta(minutes=1)
    )

    with pytest.raises(SyncBusy):
        sync_run_process(run_id=second.pk)
    # Another clinic is not held up.
    assert ingest(world.b.clinic, batch(*many(1))).status == "succeeded"


def test_a_second_worker_with_the_same_run_is_refused(world: World) -> None:
    from records.sync import sync_lock_acquire

    run, _ = sync_run_create(clinic=world.a.clinic, body=batch(*many(3)), trigger="agent")
    assert sync_lock_acquire(run, "worker-one")  # the first worker is applying it

    # A duplicate message (the sweep, a redelivery) reaches a second worker.
    with pytest.raises(SyncBusy):
        sync_run_process(run_id=run.pk)
    run.refresh_from_db()
    assert (run.status, run.position) == ("queued", 0)
    assert not Client.objects.exists()


def test_a_retry_never_rolls_the_owner_back(world: World) -> None:
    from records.sync import sync_run_retry_quarantined

    # Records without modified_at (PIMS.md allows it): only the retry's content protects them.
    old = owner(
        "C-7",
        modified_at=None,
        patients=[pet("P-ok", modified_at=None), pet("P-bad", weight=-1, modified_at=None)],
    )
    run = ingest(world.a.clinic, batch(old))
    ingest(
        world.a.clinic, batch(owner("C-7", email="new@example.org", modified_at=None, patients=[]))
    )

    retry = sync_run_retry_quarantined(run=run, actor=world.a.staff)
    assert retry is not None
    sync_run_process(run_id=retry.pk)

    assert Client.objects.get(pims_id="C-7").email == "new@example.org"
    assert Patient.objects.get(pims_id="P-ok").weights.count() == 1


def test_the_same_pims_ids_in_two_clinics_stay_apart(world: World) -> None:
    ingest(world.b.clinic, batch(owner("C-1", email="b@example.org")))
    ingest(world.a.clinic, batch(owner("C-1", email="a@example.org")))
    ingest(
        world.a.clinic,
        batch(owner("C-1", email="a2@example.org", modified_at="2026-11-30T00:00:00Z")),
    )

    assert Client.objects.get(clinic=world.a.clinic, pims_id="C-1").email == "a2@example.org"
    assert Client.objects.get(clinic=world.b.clinic, pims_id="C-1").email == "b@example.org"
    assert Patient.objects.filter(pims_id="P-1").count() == 2


def customer_of(clinic, ref: str, number: int) -> Client:
    """A home-delivery customer who is client ``C-<number>`` of ``many`` (same email, same
    name) and shares the address of all the others (whose names are close)."""
    return ClientFactory(
        clinic=clinic,
        customer_ref=ref,
        first_name=f"Name{number}",
        last_name="Whitfield",
        email=f"c{number}@example.org",
        phone="",
        address_line1="12 Alder St",
        postcode="97205",
    )


@pytest.mark.django_db(transaction=True)
def test_a_big_run_with_two_chunks_in_flight_ends_as_one_chunk_at_a_time(world: World) -> None:
    """On PostgreSQL a run of many chunks keeps two in flight, on two connections; killed
    mid-run and resumed, it ends exactly as a run applied one chunk at a time. (SQLite has one
    writer: there every run goes one chunk at a time, and the same holds.)"""
    clients = many(40, phone="")
    for clinic in (world.a.clinic, world.b.clinic):
        # Customers a PIMS client merges with (same email, same name): the first one, and one
        # in the fifth chunk. Every other client has a close name at the same address, so is
        # a possible match for them: before the merge (and then superseded by it) or after.
        customer_of(clinic, "HD-1", 0)
        customer_of(clinic, "HD-2", 22)
    ingest(world.b.clinic, batch(*clients), chunk_size=40)  # one chunk

    run, _ = sync_run_create(clinic=world.a.clinic, body=batch(*clients), trigger="agent")
    threads: set[str] = set()

    def die_on_third_chunk(position: int, total: int) -> None:
        threads.add(threading.current_thread().name)
        if position == 15:
            raise Killed

    with pytest.raises(Killed):
        sync_run_process(run_id=run.pk, chunk_size=5, on_progress=die_on_third_chunk)
    run.refresh_from_db()
    assert (run.status, run.position) == ("running", 15)
    assert Client.objects.filter(clinic=world.a.clinic).exclude(pims_id="").count() == 15
    SyncLock.objects.filter(clinic=world.a.clinic).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    finished = sync_run_process(run_id=run.pk, chunk_size=5, on_progress=die_on_third_chunk)

    assert len(threads) == (2 if connection.vendor == "postgresql" else 1)
    assert finished.status == "succeeded"
    assert state(world.a.clinic) == state(world.b.clinic)
    assert sum(finished.counts.values()) == 80
    assert finished.counts["merged"] == 2
    merged = Client.objects.filter(clinic=world.a.clinic).exclude(customer_ref="")
    assert sorted(merged.values_list("customer_ref", "pims_id")) == [
        ("HD-1", "C-0"),
        ("HD-2", "C-22"),
    ]
    assert not ManualUpdate.objects.filter(client__in=merged, status="pending").exists()
    assert sorted(
        ManualUpdate.objects.filter(clinic=world.a.clinic).values_list("kind", "status")
    ) == sorted(ManualUpdate.objects.filter(clinic=world.b.clinic).values_list("kind", "status"))


@pytest.mark.django_db(transaction=True)
def test_a_customer_merged_by_one_chunk_is_nobodys_possible_match_in_the_next(
    world: World, monkeypatch
) -> None:
    """Even while the merging chunk is still being written (on PostgreSQL the next chunk is
    prepared meanwhile), the next chunk does not suggest the customer."""
    from records.sync import chunk

    customer_of(world.a.clinic, "HD-1", 0)
    real_update = chunk.bulk_update_rows
    first_write = threading.Event()

    def slow_first_client_update(model, objs, fields):
        if model is Client and not first_write.is_set():
            first_write.set()
            time.sleep(0.5)  # the next chunk is prepared meanwhile
        return real_update(model, objs, fields)

    monkeypatch.setattr(chunk, "bulk_update_rows", slow_first_client_update)
    threads: set[str] = set()
    run = ingest(
        world.a.clinic,
        batch(*many(20, phone="")),
        chunk_size=5,
        on_progress=lambda *_: threads.add(threading.current_thread().name),
    )

    assert len(threads) == (2 if connection.vendor == "postgresql" else 1)
    assert run.status == "succeeded"
    assert run.counts == {"merged": 1, "created": 39}
    merged = Client.objects.get(customer_ref="HD-1")
    assert merged.pims_id == "C-0"
    assert not ManualUpdate.objects.filter(kind="possible_match").exists()


class TimeLimit(Exception):
    """Stands in for Celery's soft time limit, which interrupts the worker's main thread."""


@pytest.mark.django_db(transaction=True)
def test_a_run_interrupted_while_its_second_thread_writes_waits_for_it(
    world: World, monkeypatch
) -> None:
    """The run is marked failed only once the other chunk in flight has stopped, and it
    resumes from where the chunks that committed left it."""
    if connection.vendor != "postgresql":
        pytest.skip("two chunks are in flight on PostgreSQL only")
    from records import sync
    from records.sync import process

    class InterruptedJoin(threading.Thread):
        def join(self, timeout: float | None = None) -> None:
            if not getattr(self, "interrupted", False):
                self.interrupted = True
                raise TimeLimit("soft time limit exceeded")
            super().join(timeout)

    def slow_in_second_thread(position: int, total: int) -> None:
        if threading.current_thread().name != "MainThread":
            time.sleep(0.3)  # still working when the main thread is interrupted

    monkeypatch.setattr(process.threading, "Thread", InterruptedJoin)
    run, _ = sync_run_create(clinic=world.a.clinic, body=batch(*many(20)), trigger="agent")
    with pytest.raises(TimeLimit):
        sync_run_process(run_id=run.pk, chunk_size=5, on_progress=slow_in_second_thread)

    assert not any(t.name == f"sync-{run.pk}" for t in threading.enumerate())
    run.refresh_from_db()
    assert run.status == "failed" and "soft time limit" in run.error
    assert Client.objects.filter(clinic=world.a.clinic).count() == run.position
    monkeypatch.undo()
    sync.sync_run_resume(run=run)
    assert sync_run_process(run_id=run.pk, chunk_size=5).status == "succeeded"
    assert Client.objects.filter(clinic=world.a.clinic).count() == 20


def test_a_stored_batch_is_kept_compressed_and_applied_as_sent(world: World) -> None:
    """On PostgreSQL a big batch is stored with lz4 (quicker to write than the default pglz,
    as small on disk); whatever the compression, the run reads back the batch it was sent."""
    body = batch(*many(200))
    run, _ = sync_run_create(clinic=world.a.clinic, body=body, trigger=SyncRun.Trigger.AGENT)

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_column_compression(body), octet_length(body) "
                "FROM records_syncrunpayload WHERE run_id = %s",
                [run.pk],
            )
            compression, length = cursor.fetchone()
        assert (compression, length) == ("lz4", len(body))
    done = sync_run_process(run_id=run.pk)
    assert done.counts == {"created": 400}
    assert Client.objects.filter(clinic=world.a.clinic).count() == 200
