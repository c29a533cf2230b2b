"""A pet renamed (by hand, or by accepting the PIMS's new name): its open prescriptions end,
new drafts under the new name wait for a vet, the old and new are linked, the name history
says who, when and why, and the PIMS hears of the ends. All of it, or none of it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from clinics.display import person_name
from clinics.models import AuditEvent
from prescriptions.models import ItemStatus, Prescription, WritebackItem
from prescriptions.services import prescription_approve
from prescriptions.writeback import agent_feed
from records import hooks
from records.models import ManualUpdate, Patient
from records.services import ManualUpdateError, manual_update_accept, patient_rename
from tests.conftest import World, login
from tests.prescriptions.conftest import rx
from tests.prescriptions.writeback import deliver_all, ezyvet_items, ship
from tests.records.batches import batch, ingest, owner, pet

LATER = "2026-11-25T09:00:00Z"
REASON = "Adopted by a new family, who renamed her"


def open_prescriptions(patient: Patient) -> list[Prescription]:
    return list(Prescription.objects.filter(patient=patient).open().order_by("pk"))


def test_a_rename_ends_each_prescription_and_drafts_a_new_one_under_the_new_name(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    old_name = ezy_pet.name
    with django_capture_on_commit_callbacks(execute=True):
        undispensed = rx(world.a, ezy_pet, catalogue.apoquel, consult_ref="1")
        dispensed = rx(world.a, ezy_pet, catalogue.carprofen)
        ship(world.a, dispensed)
    deliver_all(django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        patient_rename(
            patient=ezy_pet, name="Clementine", reason=REASON, same_pet=True, actor=world.a.staff
        )
    deliver_all(django_capture_on_commit_callbacks)

    ezy_pet.refresh_from_db()
    assert ezy_pet.name == "Clementine"
    # The old prescriptions ended, as ezyVet's rules want them ended.
    apoquel = undispensed.items.get()
    carprofen = dispensed.items.get()
    assert apoquel.status == ItemStatus.DECLINED_DR
    assert carprofen.status == ItemStatus.CANCELLED_DR
    assert REASON in apoquel.end_reason and "Clementine" in apoquel.end_reason
    # ... and the clinic's ezyVet shows the ends.
    assert ezyvet_items(site, undispensed)["APOQ-16"]["status"] == "DECLINED_DR"
    assert ezyvet_items(site, dispensed)["CARP-75"]["status"] == "CANCELLED_DR"
    assert set(WritebackItem.objects.values_list("status", flat=True)) == {"delivered"}

    # New drafts, same items, under the new name, for the same vet to approve.
    drafts = open_prescriptions(ezy_pet)
    assert [d.replaces for d in drafts] == [undispensed, dispensed]
    undispensed.refresh_from_db()
    dispensed.refresh_from_db()
    assert undispensed.replaced_by == drafts[0]
    assert dispensed.replaced_by == drafts[1]
    for draft in drafts:
        assert draft.state == Prescription.State.DRAFT
        assert draft.source == Prescription.Source.RENAME
        assert draft.patient_name == "Clementine"
        assert draft.vet == world.a.vet
        assert draft.created_by == world.a.staff
        assert old_name in draft.notes and REASON in draft.notes
    assert drafts[0].consult_ref == "1"
    new_apoquel = drafts[0].items.get()
    assert (new_apoquel.product, new_apoquel.quantity, new_apoquel.refills) == (
        catalogue.apoquel,
        30,
        2,
    )
    assert new_apoquel.instructions == apoquel.instructions
    assert new_apoquel.status == ItemStatus.PENDING
    new_carprofen = drafts[1].items.get()
    # 30 of 90 shipped: the new prescription covers the 60 left (30 now and one refill).
    assert (new_carprofen.product, new_carprofen.quantity, new_carprofen.refills) == (
        catalogue.carprofen,
        30,
        1,
    )
    # Drafts are not sent: ezyVet holds only the two old prescriptions.
    assert len(site.records("externalprescription")) == 2

    # The name history on the pet's page: who, when, why.
    page = login(world.a.staff).get(
        reverse("records:patient-detail", kwargs={"clinic_slug": "alder", "patient_id": ezy_pet.pk})
    )
    ((when, before, after, who, why),) = page.context["renames"]
    assert (before, after, who, why) == (
        old_name,
        "Clementine",
        person_name(world.a.staff),
        REASON,
    )
    assert when is not None
    assert REASON in page.content.decode()


def test_the_new_draft_goes_to_ezyvet_once_a_vet_approves_it(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        old = rx(world.a, ezy_pet, catalogue.carprofen)
        patient_rename(
            patient=ezy_pet, name="Clementine", reason=REASON, same_pet=True, actor=world.a.staff
        )
    (draft,) = open_prescriptions(ezy_pet)

    with django_capture_on_commit_callbacks(execute=True):
        prescription_approve(prescription=draft, actor=world.a.vet_user)
    deliver_all(django_capture_on_commit_callbacks)

    assert ezyvet_items(site, old)["CARP-75"]["status"] == "DECLINED_DR"
    assert ezyvet_items(site, draft)["CARP-75"]["status"] == "PENDING"


def test_a_draft_simply_takes_the_new_name(world: World, site, ezy_pet, catalogue) -> None:
    old_name = ezy_pet.name
    draft = rx(world.a, ezy_pet, catalogue.carprofen, approve=False)

    patient_rename(
        patient=ezy_pet, name="Clementine", reason=REASON, same_pet=True, actor=world.a.staff
    )

    draft.refresh_from_db()
    # Never approved, never sent: no end and no second draft, the draft is renamed.
    assert (draft.state, draft.patient_name) == (Prescription.State.DRAFT, "Clementine")
    assert open_prescriptions(ezy_pet) == [draft]
    assert REASON in draft.notes
    event = AuditEvent.objects.get(action="prescription.draft_renamed")
    assert event.before == {"patient_name": old_name}
    assert not WritebackItem.objects.exists()


@pytest.mark.parametrize(
    ("same_pet", "reason", "message"),
    [
        (False, REASON, "Confirm that this is the same pet"),
        (True, "  ", "Give the reason for the rename"),
    ],
)
def test_a_rename_needs_the_attestation_and_a_reason(
    world: World, ezy_pet, catalogue, same_pet, reason, message
) -> None:
    old_name = ezy_pet.name
    prescription = rx(world.a, ezy_pet, catalogue.carprofen)

    with pytest.raises(ManualUpdateError, match=message):
        patient_rename(
            patient=ezy_pet,
            name="Clementine",
            reason=reason,
            same_pet=same_pet,
            actor=world.a.staff,
        )

    ezy_pet.refresh_from_db()
    assert ezy_pet.name == old_name
    assert open_prescriptions(ezy_pet) == [prescription]
    assert prescription.items.get().status == ItemStatus.PENDING


def test_a_name_written_again_in_another_case_leaves_its_prescriptions_standing(
    world: World, ezy_pet, catalogue
) -> None:
    old_name = ezy_pet.name
    prescription = rx(world.a, ezy_pet, catalogue.carprofen)
    rename_url = reverse("records:patient-rename", args=["alder", ezy_pet.pk])
    response = login(world.a.staff).post(
        rename_url,
        {"name": f" {old_name.upper()} ", "same_pet": "on", "reason": "As the PIMS writes it"},
        follow=True,
    )

    ezy_pet.refresh_from_db()
    assert ezy_pet.name == old_name.upper()
    # The vet's approval stands: the same name, nothing ended or re-drafted.
    assert open_prescriptions(ezy_pet) == [prescription]
    assert prescription.items.get().status == ItemStatus.PENDING
    assert not WritebackItem.objects.filter(prescription=prescription, kind="status").exists()
    assert "Only the letter case or spacing changed, so its prescriptions stand" in (
        response.content.decode()
    )
    # The name history keeps it, as a respelling.
    event = AuditEvent.objects.get(action="patient.renamed", object_id=str(ezy_pet.pk))
    assert (event.before["name"], event.after["name"]) == (old_name, old_name.upper())
    assert event.after["respelled"] is True
    # A real rename after it still ends and re-drafts.
    patient_rename(
        patient=ezy_pet, name="Clementine", reason=REASON, same_pet=True, actor=world.a.staff
    )
    assert [p.replaces for p in open_prescriptions(ezy_pet)] == [prescription]


def test_a_failure_in_the_hook_rolls_the_whole_rename_back(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    old_name = ezy_pet.name
    with django_capture_on_commit_callbacks(execute=True):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
        ship(world.a, prescription)
    rows_before = WritebackItem.objects.count()

    inside = []

    def fails(*args) -> None:
        inside.append((prescription.items.get().status, len(open_prescriptions(ezy_pet))))
        raise RuntimeError("the hook failed after the prescriptions were re-drafted")

    monkeypatch.setattr(hooks, "_renamed_handlers", [*hooks._renamed_handlers, fails])
    with (
        django_capture_on_commit_callbacks(execute=True) as published,
        pytest.raises(RuntimeError),
    ):
        patient_rename(
            patient=ezy_pet,
            name="Clementine",
            reason=REASON,
            same_pet=True,
            actor=world.a.staff,
        )

    assert inside == [(ItemStatus.CANCELLED_DR, 1)]  # ended and re-drafted, then undone:
    ezy_pet.refresh_from_db()
    assert ezy_pet.name == old_name
    assert open_prescriptions(ezy_pet) == [prescription]
    assert prescription.items.get().status == ItemStatus.CURRENT
    assert WritebackItem.objects.count() == rows_before
    assert not AuditEvent.objects.filter(action="patient.renamed").exists()
    assert published == []
    assert ezyvet_items(site, prescription)["CARP-75"]["status"] == "CURRENT"


def test_a_rename_that_cannot_redraft_changes_nothing(world: World, ezy_pet, catalogue) -> None:
    old_name = ezy_pet.name
    prescription = rx(world.a, ezy_pet, catalogue.carprofen)
    world.a.vet.is_active = False  # the clinic's only vet has left
    world.a.vet.save()

    with pytest.raises(Exception, match="no active vet"):
        patient_rename(
            patient=ezy_pet, name="Clementine", reason=REASON, same_pet=True, actor=world.a.staff
        )

    ezy_pet.refresh_from_db()
    assert ezy_pet.name == old_name
    assert prescription.items.get().status == ItemStatus.PENDING
    assert Prescription.objects.count() == 1
    assert not WritebackItem.objects.filter(kind=WritebackItem.Kind.STATUS).exists()


def test_staff_see_why_a_rename_could_not_be_done(world: World, ezy_pet, catalogue) -> None:
    old_name = ezy_pet.name
    rx(world.a, ezy_pet, catalogue.carprofen)
    world.a.vet.is_active = False
    world.a.vet.save()
    url = reverse(
        "records:patient-rename", kwargs={"clinic_slug": "alder", "patient_id": ezy_pet.pk}
    )

    page = login(world.a.staff).post(
        url, {"name": "Clementine", "same_pet": "on", "reason": REASON}
    )

    assert page.status_code == 200
    assert "no active vet" in page.content.decode()
    ezy_pet.refresh_from_db()
    assert ezy_pet.name == old_name


def test_the_rename_form_labels_read_like_every_other_form(world: World, ezy_pet) -> None:
    url = reverse(
        "records:patient-rename", kwargs={"clinic_slug": "alder", "patient_id": ezy_pet.pk}
    )

    page = login(world.a.staff).get(url).content.decode()

    assert ">New name</label>" in page and ">Reason for the rename</label>" in page
    assert 'class="stacked-form"' in page  # labelled fields full width, the checkbox inline


# --- accepting the PIMS's new name -----------------------------------------------------------


@pytest.fixture
def held_rename(world: World, agent_clinic, catalogue):
    """An agent clinic's pet with a dispensed and an undispensed prescription, and the PIMS's
    new name for it held as a manual update."""
    clinic = world.b.clinic
    ingest(clinic, batch(owner(patients=[pet("P-1")])))
    biscuit = Patient.objects.get(clinic=clinic, pims_id="P-1")
    undispensed = rx(world.b, biscuit, catalogue.apoquel)
    dispensed = rx(world.b, biscuit, catalogue.carprofen)
    ship(world.b, dispensed)
    ingest(clinic, batch(owner(patients=[pet("P-1", name="Biscuit II", modified_at=LATER)])))
    update = ManualUpdate.objects.get(kind=ManualUpdate.Kind.PET_NAME)
    return biscuit, undispensed, dispensed, update


@pytest.mark.parametrize(
    ("same_pet", "reason", "message"),
    [
        (False, "Name changed at the clinic", "Confirm that this is the same pet"),
        (True, "", "Give the reason for the rename"),
    ],
)
def test_accepting_a_new_pet_name_needs_the_attestation_and_a_reason(
    world: World, held_rename, same_pet, reason, message
) -> None:
    biscuit, undispensed, dispensed, update = held_rename

    with pytest.raises(ManualUpdateError, match=message):
        manual_update_accept(update=update, actor=world.b.staff, same_pet=same_pet, reason=reason)

    update.refresh_from_db()
    biscuit.refresh_from_db()
    assert update.status == ManualUpdate.Status.PENDING
    assert biscuit.name == "Biscuit"
    assert open_prescriptions(biscuit) == [undispensed, dispensed]


def test_accepting_a_new_pet_name_is_the_rename_flow(world: World, held_rename) -> None:
    biscuit, undispensed, dispensed, update = held_rename
    feed_before = {item["id"] for item in agent_feed(clinic=world.b.clinic)[0]}

    manual_update_accept(
        update=update, actor=world.b.staff, same_pet=True, reason="Name changed at the clinic"
    )

    update.refresh_from_db()
    biscuit.refresh_from_db()
    assert update.status == ManualUpdate.Status.ACCEPTED
    assert update.resolved_by == world.b.staff
    assert biscuit.name == "Biscuit II"
    assert undispensed.items.get().status == ItemStatus.DECLINED_DR
    assert dispensed.items.get().status == ItemStatus.CANCELLED_DR
    drafts = open_prescriptions(biscuit)
    assert [d.replaces for d in drafts] == [undispensed, dispensed]
    assert {d.patient_name for d in drafts} == {"Biscuit II"}
    assert {d.state for d in drafts} == {Prescription.State.DRAFT}
    # The agent's PIMS only ever heard of the dispensed item: it is told that one ended.
    new_lines = [i for i in agent_feed(clinic=world.b.clinic)[0] if i["id"] not in feed_before]
    assert [(i["kind"], i["product_reference"], i["status"]) for i in new_lines] == [
        ("status", "CARP-75", "CANCELLED_DR")
    ]
    event = AuditEvent.objects.get(action="patient.renamed")
    assert (event.before, event.actor) == ({"name": "Biscuit"}, world.b.staff)
    assert event.after["reason"] == "Name changed at the clinic"
    assert event.after["manual_update"] == update.pk


def test_a_redraft_never_covers_more_than_was_left(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    # 90 prescribed in fills of 30; 30 and then 15 shipped: 45 left.
    with django_capture_on_commit_callbacks(execute=True):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)
        ship(world.a, prescription)
        ship(world.a, prescription, quantity=15)

    patient_rename(
        patient=ezy_pet, name="Juniper", reason=REASON, same_pet=True, actor=world.a.staff
    )

    (draft,) = open_prescriptions(ezy_pet)
    item = draft.items.get()
    # One whole fill of 30: the vet decides about the odd 15, the pharmacy never over-covers.
    assert (item.quantity, item.refills, item.total_quantity) == (30, 0, 30)


def test_a_fully_dispensed_item_is_ended_but_not_redrafted(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen, refills=0)
        ship(world.a, prescription)

    patient_rename(
        patient=ezy_pet, name="Juniper", reason=REASON, same_pet=True, actor=world.a.staff
    )

    assert prescription.items.get().status == ItemStatus.CANCELLED_DR
    assert open_prescriptions(ezy_pet) == []
