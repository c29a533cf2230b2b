"""Merging PIMS clients into home-delivery customers: precision first, never twice."""

from __future__ import annotations

import pytest

from records.models import Client, ClientMerge, ManualUpdate, MatchRejection, Outcome, Patient
from records.services import possible_match_confirm, possible_match_reject
from tests.conftest import World
from tests.factories import ClientFactory, PatientFactory
from tests.records.batches import batch, ingest, owner, pet


def customer(world: World, **fields) -> Client:
    defaults = {
        "clinic": world.a.clinic,
        "customer_ref": "HD-1",
        "first_name": "Dana",
        "last_name": "Whitfield",
        "email": "dana@example.org",
        "phone": "(503) 555-0142",
        "address_line1": "12 Alder Street",
        "postcode": "97205",
    }
    return ClientFactory(**{**defaults, **fields})


def test_same_email_and_a_close_name_merge_automatically(world: World) -> None:
    hd = customer(world, first_name="Dana", last_name="Whitfeld", phone="")
    biscuit = PatientFactory(clinic=world.a.clinic, client=hd, name="biscuit", species="")

    run = ingest(world.a.clinic, batch(owner()))

    hd.refresh_from_db()
    assert hd.pims_id == "C-1"
    assert (hd.first_name, hd.last_name) == ("Dana", "Whitfeld")  # shipping name kept
    assert hd.phone == "+1 503 555 0142"  # filled where the customer had none
    assert Client.objects.filter(clinic=world.a.clinic).count() == 1
    biscuit.refresh_from_db()
    assert (biscuit.pims_id, biscuit.species) == ("P-1", "Canine")
    client_outcome = run.outcomes.get(kind="client")
    assert (client_outcome.outcome, client_outcome.customer_ref) == (Outcome.MERGED, "HD-1")
    merge = ClientMerge.objects.get()
    assert merge.method == "rule"
    assert "email same +" in merge.rule and "surname whitfield/whitfeld +" in merge.rule
    assert merge.snapshot["customer"]["phone"] == ""


def test_same_phone_typed_differently_and_a_close_name_merge(world: World) -> None:
    customer(world, email="other@example.org", first_name="Danna")
    ingest(world.a.clinic, batch(owner()))
    assert Client.objects.get(customer_ref="HD-1").pims_id == "C-1"


def test_close_name_same_address_and_same_pet_merge(world: World) -> None:
    hd = customer(world, email="", phone="", address_line1="12 alder st.")
    PatientFactory(clinic=world.a.clinic, client=hd, name="Biscuit")
    ingest(world.a.clinic, batch(owner()))
    assert Client.objects.get(customer_ref="HD-1").pims_id == "C-1"
    assert Patient.objects.filter(clinic=world.a.clinic).count() == 1


def test_the_same_name_at_the_same_address_merges_without_phone_or_email(world: World) -> None:
    hd = customer(world, email="", phone="")
    ingest(world.a.clinic, batch(owner()))
    assert Client.objects.get(pk=hd.pk).pims_id == "C-1"


def test_another_first_name_at_the_same_address_is_only_a_possible_match(world: World) -> None:
    hd = customer(world, first_name="Mark", email="", phone="")
    run = ingest(world.a.clinic, batch(owner()))

    hd.refresh_from_db()
    assert hd.pims_id == ""
    pims_copy = Client.objects.get(pims_id="C-1")
    update = ManualUpdate.objects.get()
    assert (update.kind, update.client, update.candidate) == ("possible_match", hd, pims_copy)
    assert run.outcomes.get(kind="client").outcome == Outcome.POSSIBLE_MATCH


def test_same_email_but_another_name_is_a_possible_match_not_a_merge(world: World) -> None:
    # A partner at the same address, on the household's email but their own mobile.
    customer(world, first_name="Mark", last_name="Oduya", phone="(503) 555-0199")
    ingest(world.a.clinic, batch(owner()))
    assert not ClientMerge.objects.exists()
    assert ManualUpdate.objects.get().detail.startswith("the first names differ (a household?):")


def test_two_pims_clients_fitting_one_customer_merge_with_neither(world: World) -> None:
    customer(world)
    ingest(world.a.clinic, batch(owner("C-1"), owner("C-2", patients=[pet("P-2")])))
    assert not ClientMerge.objects.exists()
    assert ManualUpdate.objects.filter(kind="possible_match").count() == 2


def test_a_possible_match_is_merged_only_when_staff_confirm(world: World) -> None:
    hd = customer(world, first_name="Mark", email="", phone="")
    PatientFactory(clinic=world.a.clinic, client=hd, name="Rex")
    ingest(world.a.clinic, batch(owner()))
    update = ManualUpdate.objects.get()

    possible_match_confirm(update=update, actor=world.a.staff)

    hd.refresh_from_db()
    assert hd.pims_id == "C-1"
    assert sorted(hd.patients.values_list("name", flat=True)) == ["Biscuit", "Rex"]
    absorbed = Client.objects.get(merged_into=hd)
    assert (absorbed.pims_id, absorbed.is_active) == ("", False)
    merge = ClientMerge.objects.get()
    assert (merge.method, merge.merged_by) == ("staff", world.a.staff)
    # Later PIMS changes now land on the customer.
    ingest(
        world.a.clinic,
        batch(owner(email="dana.new@example.org", modified_at="2026-11-26T00:00:00Z")),
    )
    hd.refresh_from_db()
    assert hd.email == "dana.new@example.org"


def test_a_rejected_pair_is_never_suggested_again(world: World) -> None:
    hd = customer(world, first_name="Mark", email="", phone="")
    ingest(world.a.clinic, batch(owner()))
    possible_match_reject(
        update=ManualUpdate.objects.get(), actor=world.a.staff, reason="Different people"
    )
    assert MatchRejection.objects.filter(customer=hd, pims_id="C-1").exists()

    # The PIMS record arrives again (say after a re-install wiped VetSync's link).
    Patient.objects.filter(pims_id="P-1").update(pims_id="")
    Client.objects.filter(pims_id="C-1").update(pims_id="")
    ingest(world.a.clinic, batch(owner()))
    assert not ManualUpdate.objects.filter(status="pending").exists()


def test_a_customer_already_merged_is_not_merged_twice(world: World) -> None:
    customer(world)
    ingest(world.a.clinic, batch(owner("C-1")))
    ingest(world.a.clinic, batch(owner("C-2", patients=[pet("P-2")])))

    assert Client.objects.get(customer_ref="HD-1").pims_id == "C-1"
    assert ClientMerge.objects.count() == 1
    assert Client.objects.filter(pims_id="C-2", customer_ref="").exists()


def test_another_clinics_customer_is_never_a_candidate(world: World) -> None:
    customer(world, clinic=world.b.clinic)
    ingest(world.a.clinic, batch(owner()))
    assert not ClientMerge.objects.exists()
    assert not ManualUpdate.objects.exists()


@pytest.mark.parametrize(
    ("first", "email"), [("Mark", "dana@example.org"), ("Dana", "none@none.com")]
)
def test_a_household_email_or_a_placeholder_is_not_enough_to_merge(
    world: World, first: str, email: str
) -> None:
    # The placeholder's customer lives elsewhere: only the name and the "email" agree.
    elsewhere = {} if first == "Mark" else {"address_line1": "980 Cedar Rd", "postcode": "97006"}
    customer(world, first_name=first, email=email, phone="", **elsewhere)
    ingest(
        world.a.clinic,
        batch(owner(first_name="Mary" if first == "Mark" else "Dana", email=email, phone="")),
    )
    assert not ClientMerge.objects.exists()


def test_an_email_two_customers_share_merges_neither(world: World) -> None:
    customer(world, phone="")
    customer(world, customer_ref="HD-2", first_name="Dana", last_name="Whitfield", phone="")
    ingest(world.a.clinic, batch(owner(phone="")))
    assert not ClientMerge.objects.exists()
    assert ManualUpdate.objects.filter(kind="possible_match").exists()


def test_a_customer_imported_after_the_first_copy_is_offered_to_staff(world: World) -> None:
    from records.services import customers_import

    ingest(world.a.clinic, batch(owner()))
    result = customers_import(
        clinic=world.a.clinic,
        rows=[
            {
                "customer_ref": "HD-late",
                "first_name": "Dana",
                "last_name": "Whitfield",
                "email": "dana@example.org",
                "pet_names": "Biscuit",
            },
            {"customer_ref": "HD-other", "first_name": "Sam", "last_name": "Okafor"},
        ],
    )

    assert result.possible_matches == 1
    update = ManualUpdate.objects.get(kind="possible_match")
    assert update.client.customer_ref == "HD-late"
    assert update.candidate.pims_id == "C-1"
    assert "found when the customer was imported" in update.detail
    assert not ClientMerge.objects.exists()  # joining two existing records is for staff
