"""Unmerging from the client page: both records and their pets back as they were, an
automatic merge's PIMS record a client again, and a reason required."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from records.models import (
    Client,
    ClientMerge,
    ManualUpdate,
    MatchRejection,
    Patient,
    WeightRecord,
)
from tests.conftest import World, login
from tests.factories import ClientFactory, PatientFactory
from tests.records.batches import batch, ingest, owner, pet
from tests.records.pages import (
    LATER,
    LATEST,
    client_url,
    dana_in_store,
    section,
)

# --- unmerge -------------------------------------------------------------------------------


def _comparable(values: dict[str, Any], *skip: str) -> dict[str, Any]:
    import json

    from django.core.serializers.json import DjangoJSONEncoder

    data = json.loads(json.dumps(values, cls=DjangoJSONEncoder))
    return {k: v for k, v in data.items() if k not in skip}


def _unmerge(staff: Any, customer: Client, merge: ClientMerge, reason: str, **options: Any) -> Any:
    url = reverse("records:client-unmerge", args=[customer.clinic.slug, customer.pk, merge.pk])
    return staff.post(url, {"reason": reason}, **options)


def _assert_like(separated: Client, reference: Client) -> None:
    """A client separated from a merge is, pets included, what the same PIMS record copied
    into a clinic without the customer is (ids and the clinic apart)."""
    from records.merging import client_snapshot, patient_snapshot

    skip = ("id", "clinic_id", "phone_normalized")
    assert _comparable(client_snapshot(separated), *skip) == _comparable(
        client_snapshot(reference), *skip
    )
    pets = {p.pims_id: p for p in separated.patients.all()}
    references = {p.pims_id: p for p in reference.patients.all()}
    assert set(pets) == set(references)
    for pims_id, pet_row in pets.items():
        skip_pet = ("id", "clinic_id", "client_id")
        assert _comparable(patient_snapshot(pet_row), *skip_pet) == _comparable(
            patient_snapshot(references[pims_id]), *skip_pet
        )


def _renamed_while_merged() -> str:
    """The PIMS renames the client and weighs Biscuit again."""
    return batch(
        owner(
            first_name="Danielle",
            modified_at=LATER,
            patients=[
                pet("P-1", name="Biscuit", weight=12.0, modified_at=LATER),
                pet("P-2", name="Rex", weight=30, modified_at=LATER),
            ],
        )
    )


def test_unmerge_of_a_confirmed_match_restores_both_records_and_their_pets_exactly(
    world: World,
) -> None:
    from records.merging import client_snapshot, patient_snapshot

    clinic = world.a.clinic
    customer = ClientFactory(
        clinic=clinic,
        customer_ref="HD-3",
        first_name="Pat",
        last_name="Maybe",
        email="",
        phone="",
        address_line1="7 Oak Ln",
        postcode="97001",
    )
    rex = PatientFactory(clinic=clinic, client=customer, name="Rex", species="", weight=None)
    own_only = PatientFactory(clinic=clinic, client=customer, name="Mittens", weight=None)
    ingest(
        clinic,
        batch(
            owner(
                "C-4",
                first_name="Robin",
                last_name="Maybe",
                email="pat@x.org",
                phone="",
                address={"line1": "7 Oak Lane", "postcode": "97001"},
                patients=[
                    pet("P-40", name="Rex", weight=30.0),
                    pet("P-41", name="Tiny", species="Feline"),
                ],
            )
        ),
    )
    candidate = Client.objects.get(pims_id="C-4")
    before_customer = client_snapshot(customer)
    before_candidate = client_snapshot(candidate)
    pets_before = {p.pk: patient_snapshot(p) for p in Patient.objects.all()}
    weights_before = set(WeightRecord.objects.values_list("pk", "patient_id"))
    match = ManualUpdate.objects.get(kind="possible_match")
    staff = login(world.a.staff)
    staff.post(
        reverse("records:update-action", args=[clinic.slug, match.pk]), {"action": "confirm"}
    )
    customer.refresh_from_db()
    assert customer.pims_id == "C-4" and customer.email == "pat@x.org"
    rex.refresh_from_db()
    assert rex.pims_id == "P-40" and rex.species == "Canine"
    merge = ClientMerge.objects.get()

    response = _unmerge(staff, customer, merge, "Different families on the same street")
    assert response.status_code == 302

    customer.refresh_from_db()
    candidate.refresh_from_db()
    assert _comparable(client_snapshot(customer)) == _comparable(before_customer)
    assert _comparable(client_snapshot(candidate)) == _comparable(before_candidate)
    for patient in Patient.objects.all():
        assert _comparable(patient_snapshot(patient)) == _comparable(pets_before[patient.pk])
    assert Patient.objects.count() == len(pets_before)
    assert set(WeightRecord.objects.values_list("pk", "patient_id")) == weights_before
    own_only.refresh_from_db()
    assert own_only.client_id == customer.pk
    # Never suggested again, on record, and the page tells the story.
    rejected = MatchRejection.objects.filter(pims_id="C-4").values_list("customer_id", flat=True)
    assert customer.pk in set(rejected)
    page = staff.get(client_url(customer))
    assert "Unmerged" in section(page, "unmerged")
    assert "Different families on the same street" in page.content.decode()
    assert "unmerge-form" not in page.content.decode()
    # A second unmerge is refused.
    again = _unmerge(staff, customer, merge, "twice", follow=True)
    assert "already undone" in again.content.decode()


def test_unmerge_of_an_automatic_merge_makes_the_pims_record_a_client_again(
    world: World,
) -> None:
    from records.merging import client_snapshot, patient_snapshot

    clinic = world.a.clinic
    customer = dana_in_store(clinic, address_line1="12 Alder Street", postcode="97205")
    biscuit = PatientFactory(
        clinic=clinic, client=customer, name="biscuit", species="", weight=None
    )
    before_customer = client_snapshot(customer)
    before_biscuit = patient_snapshot(biscuit)
    entry = owner(patients=[pet("P-1", name="Biscuit"), pet("P-2", name="Rex", weight=30)])
    ingest(clinic, batch(entry))
    customer.refresh_from_db()
    assert customer.pims_id == "C-1" and customer.phone  # merged, phone filled from the PIMS
    # While merged, the PIMS changes the name (held for staff) and weighs Biscuit again.
    ingest(clinic, _renamed_while_merged())
    # The PIMS's record as it is now, copied into a clinic without the customer: what the
    # PIMS client must look like once separated.
    ingest(world.b.clinic, _renamed_while_merged())
    assert ManualUpdate.objects.filter(
        client=customer, kind="client_name", status="pending"
    ).exists()
    merge = ClientMerge.objects.get(clinic=clinic)
    staff = login(world.a.staff)
    assert _unmerge(staff, customer, merge, "Wrong Dana").status_code == 302

    customer.refresh_from_db()
    biscuit.refresh_from_db()
    assert _comparable(client_snapshot(customer)) == _comparable(before_customer)
    assert _comparable(patient_snapshot(biscuit)) == _comparable(before_biscuit)
    assert list(customer.patients.all()) == [biscuit]
    assert not WeightRecord.objects.filter(patient=biscuit).exists()

    pims_client = Client.objects.get(clinic=clinic, pims_id="C-1")
    _assert_like(pims_client, Client.objects.get(clinic=world.b.clinic, pims_id="C-1"))
    assert pims_client.customer_ref == "" and pims_client.merged_into_id is None
    pets = {p.pims_id: p for p in pims_client.patients.all()}
    assert set(pets) == {"P-1", "P-2"}
    # The weighings the PIMS sent while merged go with its pet, history included.
    assert [str(w) for w in WeightRecord.objects.filter(patient=pets["P-1"])] == [
        "11.40 kg",
        "12.00 kg",
    ]
    assert [str(w) for w in WeightRecord.objects.filter(patient=pets["P-2"])] == ["30.00 kg"]
    # The name change the PIMS made while merged now waits on the PIMS client; it already
    # carries the PIMS's name, so nothing is left to confirm.
    held = ManualUpdate.objects.get(kind="client_name")
    assert (held.client_id, held.status) == (pims_client.pk, "superseded")
    # A later sync updates the PIMS client, and never merges the pair again.
    ingest(clinic, batch(owner(email="dana@later.example", modified_at=LATEST, patients=[])))
    pims_client.refresh_from_db()
    customer.refresh_from_db()
    assert pims_client.email == "dana@later.example" and customer.pims_id == ""
    page = staff.get(client_url(pims_client))
    assert "A PIMS record of its own again" in section(page, "timeline")


def test_unmerge_needs_a_reason(world: World) -> None:
    clinic = world.a.clinic
    customer = dana_in_store(clinic)
    ingest(clinic, batch(owner(patients=[])))
    merge = ClientMerge.objects.get()
    response = login(world.a.staff).post(
        reverse("records:client-unmerge", args=[clinic.slug, customer.pk, merge.pk]),
        {"reason": " "},
        follow=True,
    )
    assert "Say why the merge was wrong." in response.content.decode()
    customer.refresh_from_db()
    assert customer.pims_id == "C-1"
