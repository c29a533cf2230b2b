"""The staged first copy: new clients and pets written as set operations end exactly as the
record-by-record engine leaves them, and a killed staged run resumes to the same end."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.db import IntegrityError
from django.utils import timezone

from records.models import (
    Client,
    ClientMerge,
    ManualUpdate,
    MatchModelFit,
    Patient,
    SyncLock,
    SyncRun,
    WeightRecord,
)
from records.sync import engine, staged, sync_run_create, sync_run_process
from tests.conftest import World
from tests.factories import ClientFactory
from tests.records.batches import Killed, batch, ingest, killed_after_chunks, owner, pet


def first_copy() -> list[dict[str, Any]]:
    """A first copy with a bit of everything: a client a customer is (merged), clients close
    to that customer (possible matches), plain new clients of every shape, and bad records."""
    return [
        # The customer's household (same surname, email and address; another first name):
        # a possible match, superseded by the merge of C-0 just after.
        owner("C-H", first_name="Robin", email="c0@example.org", phone="", patients=[]),
        owner("C-0", first_name="Name0", email="c0@example.org", phone="", patients=[pet("P-0")]),
        owner(
            "C-1",
            first_name="Name1",
            address={"country": ""},  # the clinic's country, kept apart from pims_seen's ""
            patients=[
                pet("P-1a", weight=None),
                pet(
                    "P-1b",
                    weight=22,
                    weight_unit="lb",
                    deceased=True,
                    deceased_on="2026-10-01",
                    microchip="985112",
                ),
            ],
        ),
        owner("C-2", active=False, modified_at=None, patients=[pet("P-2", birth_date=None)]),
        owner("C-3", first_name="Zoë", patients=[pet("P-3", weight=-1), pet("P-3b")]),
        owner("", first_name="NoId"),
        owner("C-4", first_name="Kim", last_name="O'Brien", email="Kim@Example.org", patients=[]),
        owner("C-4", first_name="Again"),  # a repeat: quarantined
        owner("C-5", phone="(503) 555-0199", patients=[pet("P-5", weight=0)]),
        owner("C-6", first_name="Sam", patients=[pet("P-5")]),  # a pet under two clients
        *[
            owner(
                f"C-{i}",
                first_name=f"Pat{i}",
                last_name=f"Lee{i}",
                email=f"p{i}@example.org",
                phone=f"503555{i:04d}",
                address={"line1": f"{i} Birch Ave", "postcode": "97210"},
                # Timestamps in other zones are kept as their UTC time.
                modified_at=f"2026-11-23T20:04:00.{i:06d}+02:00",
                patients=[
                    pet(
                        f"P-{i}",
                        name=f"Pet{i}",
                        weight=3.25 + i,
                        modified_at=f"2026-11-23T{i:02d}:04:00-06:00",
                    )
                ],
            )
            for i in range(7, 19)
        ],
    ]


def delta() -> list[dict[str, Any]]:
    """Later changes to staged records: each kind the field policy treats differently."""
    later = "2026-11-30T09:00:00Z"
    return [
        owner("C-1", first_name="Name1", email="new@example.org", modified_at=later, patients=[]),
        owner(
            "C-7",
            first_name="Patrick",
            last_name="Lee7",
            email="p7@example.org",
            phone="5035550007",
            address={"line1": "7 Birch Ave", "postcode": "97210"},
            modified_at=later,
            patients=[pet("P-7", name="Pet7", weight=11.5, modified_at=later)],
        ),
        owner(
            "C-8",
            first_name="Pat8",
            last_name="Lee8",
            email="p8@example.org",
            phone="5035550008",
            address={"line1": "8 Birch Ave", "postcode": "97210"},
            patients=[pet("P-8", name="Pet8", weight=11.25)],  # the same as before
        ),
    ]


def customer(clinic) -> Client:
    """A home-delivery customer who is PIMS client C-0 (same name and email)."""
    return ClientFactory(
        clinic=clinic,
        customer_ref="HD-1",
        first_name="Name0",
        last_name="Whitfield",
        email="c0@example.org",
        phone="",
        address_line1="12 Alder St",
        postcode="97205",
    )


def snapshot(clinic, run: SyncRun) -> dict[str, Any]:
    """Everything a run wrote, as staff and reports see it: no ids, no timestamps of now."""
    names = {c.pk: c.pims_id or c.customer_ref for c in Client.objects.filter(clinic=clinic)}
    pets = {p.pk: p.pims_id for p in Patient.objects.filter(clinic=clinic)}
    skip = {"id", "clinic", "created_at", "updated_at"}
    return {
        "counts": (run.counts, run.kind_counts),
        "outcomes": [
            (
                *(o.kind, o.pims_id, o.outcome, names.get(o.client_id), pets.get(o.patient_id)),
                *(o.customer_ref, o.detail, o.score, o.evidence, o.raw),
            )
            for o in run.outcomes.order_by("id")
        ],
        "clients": sorted(
            (names[row.pop("id")], sorted(row.items(), key=str))
            for row in Client.objects.filter(clinic=clinic).values(
                *(f.attname for f in Client._meta.concrete_fields if f.name not in skip - {"id"})
            )
        ),
        "patients": sorted(
            (pets[row.pop("id")], names[row.pop("client_id")], sorted(row.items(), key=str))
            for row in Patient.objects.filter(clinic=clinic).values(
                *(f.attname for f in Patient._meta.concrete_fields if f.name not in skip - {"id"})
            )
        ),
        "weights": sorted(
            (pets[w.patient_id], str(w.weight), w.unit, w.recorded_at, w.source)
            for w in WeightRecord.objects.filter(patient__clinic=clinic)
        ),
        "updates": sorted(
            (
                *(u.kind, u.status, names[u.client_id], names.get(u.candidate_id), u.detail),
                *(str(u.current), str(u.proposed)),
            )
            for u in ManualUpdate.objects.filter(clinic=clinic)
        ),
        "merges": sorted(
            (names[m.customer_id], m.pims_id, m.method, m.rule, str(m.evidence))
            for m in ClientMerge.objects.filter(clinic=clinic)
        ),
    }


@pytest.fixture
def stage_loads(monkeypatch) -> list[int]:
    """How many rows each staged chunk loaded (the staged path's own step)."""
    loads: list[int] = []
    real = staged.load

    def counting(rows: staged.StagedCreates) -> None:
        loads.append(len(rows))
        real(rows)

    monkeypatch.setattr("records.sync.chunk.staged_load", counting)
    return loads


def test_the_staged_path_writes_what_the_engine_writes(
    world: World, monkeypatch, stage_loads: list[int]
) -> None:
    a, b = world.a.clinic, world.b.clinic
    for clinic in (a, b):
        customer(clinic)

    staged_first = ingest(a, batch(*first_copy()), chunk_size=4)
    staged_delta = ingest(a, batch(*delta()), chunk_size=4)
    assert stage_loads  # new clients and pets went through the stage
    loaded = len(stage_loads)
    # Clinic B starts from the matcher's prior as A did (a fit is pooled across clinics).
    MatchModelFit.objects.all().delete()
    monkeypatch.setattr(engine, "STAGE_NEW_RECORDS", False)
    engine_first = ingest(b, batch(*first_copy()), chunk_size=4)
    engine_delta = ingest(b, batch(*delta()), chunk_size=4)
    assert len(stage_loads) == loaded  # the engine alone, record by record

    assert snapshot(a, staged_delta) == snapshot(b, engine_delta)
    assert snapshot(a, staged_first) == snapshot(b, engine_first)
    # What the comparison rests on: a merge, possible matches, quarantines, creates.
    assert staged_first.counts == {
        "possible_match": 1,
        "merged": 1,
        "created": 36,
        "quarantined": 5,
    }
    # The PIMS values kept by the database read as the engine's, so the delta saw only the
    # changes: C-1's email applied and its address held (the PIMS now names the country),
    # C-7's name held, P-7's weight applied, and C-8 with P-8 unchanged.
    assert staged_delta.counts == {"manual_update": 2, "updated": 1, "unchanged": 2}


def test_a_staged_report_lists_the_records_in_batch_order(world: World) -> None:
    run = ingest(world.a.clinic, batch(*first_copy()), chunk_size=4)

    order = list(run.outcomes.order_by("id").values_list("kind", "pims_id"))
    assert order[:10] == [
        ("client", "C-H"),
        ("client", "C-0"),
        ("patient", "P-0"),
        ("client", "C-1"),
        ("patient", "P-1a"),
        ("patient", "P-1b"),
        ("client", "C-2"),
        ("patient", "P-2"),
        ("patient", "P-3"),  # the bad pet is quarantined before its owner is created
        ("client", "C-3"),
    ]


def test_a_killed_staged_run_resumes_to_the_same_end(world: World, stage_loads: list[int]) -> None:
    a, b = world.a.clinic, world.b.clinic
    for clinic in (a, b):
        customer(clinic)
    whole = ingest(b, batch(*first_copy(), batch_id="same"), chunk_size=4)
    MatchModelFit.objects.all().delete()  # A starts from the prior B started from

    run, _ = sync_run_create(clinic=a, body=batch(*first_copy(), batch_id="same"), trigger="agent")
    with pytest.raises(Killed):
        sync_run_process(run_id=run.pk, chunk_size=4, on_progress=killed_after_chunks(3))
    run.refresh_from_db()
    assert (run.status, run.position) == ("running", 12)
    # C-H, C-0 (merged into the customer) and 8 more: the repeated C-4 and the client without
    # an id were quarantined.
    assert Client.objects.filter(clinic=a).exclude(pims_id="").count() == 10
    assert stage_loads  # the chunks that committed were staged

    SyncLock.objects.filter(clinic=a).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    resumed = sync_run_process(run_id=run.pk, chunk_size=4)

    assert resumed.status == "succeeded"
    assert snapshot(a, resumed) == snapshot(b, whole)


def test_a_batch_naming_its_clients_twice_is_read_as_when_it_was_received(world: World) -> None:
    # JSON keeps the last of a repeated member: the run applies the second list, whose length
    # the run was created with.
    text = batch(owner("C-first"), batch_id="twice")
    text = text[:-1] + ', "clients": ' + json.dumps([owner("C-last"), owner("C-last-2")]) + "}"

    run = ingest(world.a.clinic, text)

    assert run.total == 2 and run.status == "succeeded"
    assert sorted(Client.objects.values_list("pims_id", flat=True)) == ["C-last", "C-last-2"]


def test_a_record_that_appears_during_a_fresh_first_copy_stops_it_and_the_retry_sees_it(
    world: World,
) -> None:
    """A first copy into a clinic with no PIMS record skips looking its records up; should one
    appear anyway (here: made by hand between two chunks), its unique key stops the chunk,
    and the retry looks every record up."""
    from records.sync import sync_run_resume

    clinic = world.a.clinic
    clients = [owner(f"C-{i}", first_name=f"Name{i}", patients=[pet(f"P-{i}")]) for i in range(6)]
    run, _ = sync_run_create(clinic=clinic, body=batch(*clients), trigger="agent")

    def someone_adds_c4(position: int, total: int) -> None:
        if position == 3:
            ClientFactory(clinic=clinic, pims_id="C-4", first_name="Name4", last_name="Whitfield")

    with pytest.raises(IntegrityError):
        sync_run_process(run_id=run.pk, chunk_size=3, on_progress=someone_adds_c4)
    run.refresh_from_db()
    assert (run.status, run.position) == ("failed", 3)

    sync_run_resume(run=run)
    finished = sync_run_process(run_id=run.pk, chunk_size=3)

    assert finished.status == "succeeded"
    assert Client.objects.filter(clinic=clinic, pims_id="C-4").count() == 1
    assert finished.outcomes.get(pims_id="C-4").outcome != "created"
    assert finished.counts["created"] == 11  # C-0…C-5 and their pets, but C-4 itself


@pytest.mark.django_db
def test_the_stage_gives_a_timestamp_the_value_django_would() -> None:
    from django.db import connection

    when = staged._datetime_adapter(connection)
    plus_two = dt.timezone(dt.timedelta(hours=2))
    for value in (
        None,
        dt.datetime(2026, 11, 23, 18, 4, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 23, 20, 4, 0, 250000, tzinfo=plus_two),
        dt.datetime(2026, 3, 29, 1, 30),  # naive: Django's own handling
    ):
        assert when(value) == connection.ops.adapt_datetimefield_value(value)
