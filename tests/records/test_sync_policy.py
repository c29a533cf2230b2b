"""The field policy of DESIGN.md, row by row, as staff would see its effect."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from records import hooks
from records.models import Client, ManualUpdate, Outcome, Patient, SyncRecordOutcome
from tests.conftest import World
from tests.records.batches import batch, ingest, owner, pet

LATER = "2026-11-25T09:00:00Z"


def outcome_of(run, pims_id: str) -> SyncRecordOutcome:
    return run.outcomes.get(pims_id=pims_id)


def test_new_client_and_pet_are_copied_whole(world: World) -> None:
    run = ingest(world.a.clinic, batch(owner()))

    client = Client.objects.get(clinic=world.a.clinic, pims_id="C-1")
    assert (client.first_name, client.last_name, client.email) == (
        "Dana",
        "Whitfield",
        "dana@example.org",
    )
    assert client.phone_normalized == "+15035550142"
    assert client.address_lines() == ["12 Alder St", "Portland OR 97205"]
    biscuit = client.patients.get()
    assert (biscuit.name, biscuit.species, biscuit.breed, biscuit.sex) == (
        "Biscuit",
        "Canine",
        "Beagle",
        "Female spayed",
    )
    assert biscuit.birth_date == dt.date(2019, 4, 2)
    assert biscuit.weight == Decimal("11.40")
    assert [w.weight for w in biscuit.weights.all()] == [Decimal("11.40")]
    assert run.counts == {"created": 2}
    assert run.status == "succeeded"


def test_email_change_is_applied_automatically(world: World) -> None:
    ingest(world.a.clinic, batch(owner()))
    run = ingest(world.a.clinic, batch(owner(email="dana.w@example.net", modified_at=LATER)))

    assert Client.objects.get(pims_id="C-1").email == "dana.w@example.net"
    assert outcome_of(run, "C-1").outcome == Outcome.UPDATED
    assert not ManualUpdate.objects.exists()


@pytest.mark.parametrize(
    ("change", "kind", "proposed"),
    [
        (
            {"first_name": "Danielle"},
            "client_name",
            {"first_name": "Danielle", "last_name": "Whitfield"},
        ),
        (
            {"address": {"line1": "40 Birch Ave", "postcode": "97210"}},
            "client_address",
            {
                "line1": "40 Birch Ave",
                "line2": "",
                "city": "Portland",
                "state": "OR",
                "postcode": "97210",
                "country": "US",
            },
        ),
    ],
)
def test_client_name_and_address_changes_are_held_for_staff(
    world: World, change: dict, kind: str, proposed: dict
) -> None:
    ingest(world.a.clinic, batch(owner()))
    run = ingest(world.a.clinic, batch(owner(modified_at=LATER, **change)))

    client = Client.objects.get(pims_id="C-1")
    assert client.first_name == "Dana" and client.address_line1 == "12 Alder St"
    update = ManualUpdate.objects.get()
    assert (update.kind, update.status, update.client) == (kind, "pending", client)
    assert update.proposed == proposed
    assert outcome_of(run, "C-1").outcome == Outcome.MANUAL_UPDATE


def test_a_newer_pims_value_replaces_the_pending_proposal_in_place(world: World) -> None:
    ingest(world.a.clinic, batch(owner()))
    ingest(world.a.clinic, batch(owner(first_name="Danielle", modified_at=LATER)))
    ingest(world.a.clinic, batch(owner(first_name="Dani", modified_at="2026-11-26T09:00:00Z")))

    update = ManualUpdate.objects.get()
    assert update.proposed["first_name"] == "Dani"


def test_phone_change_is_not_applied_but_kept_as_pims_differs(world: World) -> None:
    ingest(world.a.clinic, batch(owner()))
    run = ingest(world.a.clinic, batch(owner(phone="503-555-0199", modified_at=LATER)))

    client = Client.objects.get(pims_id="C-1")
    assert client.phone == "+1 503 555 0142"
    assert client.pims_seen["phone"] == "503-555-0199"
    assert "PIMS differs (not applied): phone" in outcome_of(run, "C-1").detail
    assert not ManualUpdate.objects.exists()


def test_pet_name_change_is_held_as_a_manual_update(world: World) -> None:
    ingest(world.a.clinic, batch(owner()))
    ingest(world.a.clinic, batch(owner(patients=[pet(name="Biscuit II", modified_at=LATER)])))

    biscuit = Patient.objects.get(pims_id="P-1")
    assert biscuit.name == "Biscuit"
    update = ManualUpdate.objects.get()
    assert (update.kind, update.patient, update.proposed) == (
        "pet_name",
        biscuit,
        {"name": "Biscuit II"},
    )


@pytest.mark.parametrize(
    ("field", "value", "attr", "kept"),
    [
        ("birth_date", "2018-01-01", "birth_date", dt.date(2019, 4, 2)),
        ("breed", "Harrier", "breed", "Beagle"),
        ("species", "Feline", "species", "Canine"),
        ("sex", "Male neutered", "sex", "Female spayed"),
    ],
)
def test_pet_demographics_are_not_applied(world: World, field, value, attr, kept) -> None:
    ingest(world.a.clinic, batch(owner()))
    run = ingest(world.a.clinic, batch(owner(patients=[pet(modified_at=LATER, **{field: value})])))

    biscuit = Patient.objects.get(pims_id="P-1")
    assert getattr(biscuit, attr) == kept
    assert biscuit.pims_seen[field] == value
    assert f"PIMS differs (not applied): {field}" in outcome_of(run, "P-1").detail
    assert not ManualUpdate.objects.exists()


def test_weight_is_applied_and_the_history_kept(world: World) -> None:
    ingest(world.a.clinic, batch(owner()))
    run = ingest(world.a.clinic, batch(owner(patients=[pet(weight=12.1, modified_at=LATER)])))

    biscuit = Patient.objects.get(pims_id="P-1")
    assert biscuit.weight == Decimal("12.10")
    assert [w.weight for w in biscuit.weights.order_by("recorded_at")] == [
        Decimal("11.40"),
        Decimal("12.10"),
    ]
    assert outcome_of(run, "P-1").outcome == Outcome.UPDATED


def test_deceased_is_applied_and_the_hook_told(world: World) -> None:
    told: list[list[str]] = []

    def handler(patients) -> None:
        told.append([p.name for p in patients])

    hooks.on_patients_deceased(handler)
    try:
        ingest(world.a.clinic, batch(owner()))
        ingest(
            world.a.clinic,
            batch(
                owner(patients=[pet(deceased=True, deceased_on="2026-11-20", modified_at=LATER)])
            ),
        )
    finally:
        hooks.remove_patients_deceased_handler(handler)

    biscuit = Patient.objects.get(pims_id="P-1")
    assert biscuit.is_deceased and biscuit.deceased_on == dt.date(2026, 11, 20)
    assert told == [["Biscuit"]]


def test_an_older_record_does_not_undo_a_newer_one(world: World) -> None:
    ingest(world.a.clinic, batch(owner(email="new@example.org", modified_at=LATER)))
    ingest(
        world.a.clinic, batch(owner(email="old@example.org", modified_at="2026-11-01T00:00:00Z"))
    )

    assert Client.objects.get(pims_id="C-1").email == "new@example.org"
