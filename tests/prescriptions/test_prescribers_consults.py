"""The clinical record and the prescriber, checked against ezyVet: a vet picks one of the
pet's consults (it reaches ezyVet as ``consult_id``); each vet's ezyVet user is picked from the
site's vet users by a clinic admin or the onboarding team; a prescription by a vet ezyVet does
not know is held with its reason, not failed, and goes once the vet is mapped."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from clinics.models import AuditEvent, Membership, Role
from clinics.vet_names import names_differ
from prescriptions.models import Prescription, WritebackItem
from tests.conftest import World, login
from tests.factories import UserFactory, VetFactory
from tests.prescriptions.conftest import rx
from tests.prescriptions.writeback import calls, deliver_all, ezyvet_records
from vetsync.pims.emulator import EzyVetEmulator

Status = WritebackItem.Status


def _vet_users(site: EzyVetEmulator) -> list[str]:
    vet_contacts = {c["id"] for c in site.records("contact") if c.get("is_vet") == "1"}
    return [u["id"] for u in site.records("user") if str(u["contact_id"]) in vet_contacts]


def _non_vet_user(site: EzyVetEmulator) -> str:
    vets = set(_vet_users(site))
    return next(u["id"] for u in site.records("user") if u["id"] not in vets)


@pytest.fixture
def clinic_admin(world: World):
    user = UserFactory(username="alder-admin")
    Membership.objects.create(user=user, clinic=world.a.clinic, role=Role.ADMIN)
    return user


def _new_rx_url(world: World, pet) -> str:
    return (
        reverse("prescriptions:prescription-new", args=[world.a.clinic.slug]) + f"?patient={pet.pk}"
    )


# --- the consult picker ----------------------------------------------------------------------


def test_a_consult_picked_from_the_list_reaches_ezyvet_as_consult_id(
    world: World, catalogue, site, ezy_pet, django_capture_on_commit_callbacks
) -> None:
    consults = [c for c in site.records("consult") if c["animal_id"] == ezy_pet.pims_id]
    chosen = consults[0]
    vet = login(world.a.vet_user)

    page = vet.get(_new_rx_url(world, ezy_pet)).content.decode()
    picker = re.search(r'<select name="consult_ref"[^>]*>(.*?)</select>', page, re.S)
    assert picker is not None, "no consult picker"
    options = re.findall(r'<option value="(\d+)"[^>]*>([^<]*)</option>', picker.group(1))
    offered = dict(options)
    assert set(offered) == {c["id"] for c in consults}
    assert chosen["description"] in offered[chosen["id"]]  # the reason is shown

    response = vet.post(
        _new_rx_url(world, ezy_pet),
        {
            "vet": world.a.vet.pk,
            "channel": "portal",
            "consult_ref": chosen["id"],
            "expires_on": (world.a.clinic.localdate().replace(year=2027)).isoformat(),
            "approve": "on",
            "items-TOTAL_FORMS": "1",
            "items-INITIAL_FORMS": "0",
            "items-0-product": catalogue.carprofen.pk,
            "items-0-quantity": "30",
            "items-0-refills": "0",
            "items-0-instructions": "One daily",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    prescription = Prescription.objects.get()
    assert prescription.consult_ref == chosen["id"]
    deliver_all(django_capture_on_commit_callbacks)

    [record] = ezyvet_records(site, prescription)
    assert record["consult_id"] == chosen["id"]


def test_a_consult_of_another_pet_is_refused(world: World, catalogue, site, ezy_pet) -> None:
    other = next(c for c in site.records("consult") if c["animal_id"] != ezy_pet.pims_id)

    page = (
        login(world.a.vet_user)
        .post(_new_rx_url(world, ezy_pet), {"vet": world.a.vet.pk, "consult_ref": other["id"]})
        .content.decode()
    )

    assert "Pick one of this pet" in page
    assert not Prescription.objects.exists()


def test_the_consults_say_so_when_ezyvet_cannot_be_reached(
    world: World, catalogue, site, ezy_pet
) -> None:
    site.stop()

    response = login(world.a.vet_user).get(_new_rx_url(world, ezy_pet))

    assert response.status_code == 200
    page = response.content.decode()
    assert "The consults could not be read from ezyVet: ezyVet could not be reached" in page
    # In plain words: the connection's technical cause stays off the vet's page.
    assert "127.0.0.1" not in page and "Connection" not in page


# --- the prescriber --------------------------------------------------------------------------


def test_a_prescriber_unknown_to_ezyvet_is_held_with_its_reason_then_sent_once_mapped(
    world: World, catalogue, site, ezy_pet, clinic_admin, django_capture_on_commit_callbacks
) -> None:
    stranger = _non_vet_user(site)
    world.a.vet.pims_user_id = stranger  # a receptionist's user, not a vet's
    world.a.vet.save()
    prescription = rx(world.a, ezy_pet, catalogue.carprofen)

    deliver_all(django_capture_on_commit_callbacks)
    deliver_all(django_capture_on_commit_callbacks)  # looked at again: still held, not failed

    row = prescription.writebacks.get()
    assert row.status == Status.HELD
    assert f"ezyVet does not know {world.a.vet}" in row.last_error
    assert row.attempts == 0 and not row.attempts_made.exists()
    assert calls(site, "POST") == []
    monitor = login(world.a.staff).get(
        reverse("prescriptions:prescription-detail", args=["alder", prescription.pk])
    )
    assert "ezyVet does not know" in monitor.content.decode()
    notice = login(world.a.staff).get(reverse("prescriptions:writeback-monitor", args=["alder"]))
    assert "1 writeback is held" in notice.content.decode()

    vet_user = _vet_users(site)[0]
    mapped = login(clinic_admin).post(
        reverse("clinics:prescribers", args=["alder"]),
        {"vet": world.a.vet.pk, "pims_user_id": vet_user},
        follow=True,
    )
    assert f"is now PIMS user {vet_user}" in mapped.content.decode()
    deliver_all(django_capture_on_commit_callbacks)

    row.refresh_from_db()
    assert row.status == Status.DELIVERED
    [record] = ezyvet_records(site, prescription)
    assert record["prescribing_vet_user_id"] == vet_user


def test_a_vet_without_an_ezyvet_user_is_held_too(
    world: World, catalogue, site, ezy_pet, django_capture_on_commit_callbacks
) -> None:
    world.a.vet.pims_user_id = ""
    world.a.vet.save()
    prescription = rx(world.a, ezy_pet, catalogue.carprofen)

    deliver_all(django_capture_on_commit_callbacks)

    row = prescription.writebacks.get()
    assert row.status == Status.HELD
    assert "has no ezyVet user yet" in row.last_error


def test_a_clinic_admin_picks_a_vets_ezyvet_user_from_the_list(
    world: World, site, ezyvet_clinic, clinic_admin
) -> None:
    url = reverse("clinics:prescribers", args=["alder"])
    admin = login(clinic_admin)
    vet_users = _vet_users(site)
    page = admin.get(url).content.decode()
    for user_id in vet_users:
        assert f'<option value="{user_id}"' in page
    assert f'<option value="{_non_vet_user(site)}"' not in page  # only vets prescribe
    gets = len([e for e in site.request_log() if e["endpoint"] == "user"])
    admin.get(url)
    assert len([e for e in site.request_log() if e["endpoint"] == "user"]) == gets  # cached

    new = next(u for u in vet_users if u != world.a.vet.pims_user_id)
    before = world.a.vet.pims_user_id
    response = admin.post(url, {"vet": world.a.vet.pk, "pims_user_id": new}, follow=True)

    assert f"is now PIMS user {new}" in response.content.decode()
    world.a.vet.refresh_from_db()
    assert world.a.vet.pims_user_id == new
    event = AuditEvent.objects.get(action="vet.pims_user_changed")
    assert (event.actor, event.before, event.after) == (
        clinic_admin,
        {"pims_user_id": before},
        {"pims_user_id": new},
    )

    refused = admin.post(
        url, {"vet": world.a.vet.pk, "pims_user_id": _non_vet_user(site)}, follow=True
    )
    assert "ezyVet has no active vet user" in refused.content.decode()
    world.a.vet.refresh_from_db()
    assert world.a.vet.pims_user_id == new


def test_only_clinic_admins_and_the_onboarding_team_map_prescribers(
    world: World, site, ezyvet_clinic
) -> None:
    url = reverse("clinics:prescribers", args=["alder"])
    target = next(u for u in _vet_users(site) if u != world.a.vet.pims_user_id)
    for user in (world.a.staff, world.a.vet_user):  # a vet cannot pick their own
        client = login(user)
        assert client.get(url).status_code == 200  # they may look
        assert client.post(url, {"vet": world.a.vet.pk, "pims_user_id": target}).status_code == 403
    assert login(world.b.staff).get(url).status_code == 404
    assert not AuditEvent.objects.filter(action="vet.pims_user_changed").exists()

    admin_url = reverse("admin:clinics_clinic_prescribers", args=[world.a.clinic.pk])
    team = login(world.onboarding)
    assert target in team.get(admin_url).content.decode()
    team.post(admin_url, {"vet": world.a.vet.pk, "pims_user_id": target})
    world.a.vet.refresh_from_db()
    assert world.a.vet.pims_user_id == target
    assert AuditEvent.objects.get(action="vet.pims_user_changed").actor == world.onboarding


def test_the_prescribers_page_says_so_when_ezyvet_cannot_be_reached(
    world: World, site, ezyvet_clinic, clinic_admin
) -> None:
    site.stop()

    page = login(clinic_admin).get(reverse("clinics:prescribers", args=["alder"]))

    assert page.status_code == 200
    assert "ezyVet's users could not be read" in page.content.decode()


def test_the_admin_refuses_a_typed_user_ezyvet_does_not_know(
    world: World, site, ezyvet_clinic
) -> None:
    team = login(world.onboarding)
    url = reverse("admin:clinics_vet_add")

    page = team.post(
        url,
        {
            "clinic": world.a.clinic.pk,
            "first_name": "Ada",
            "last_name": "Stone",
            "pims_user_id": _non_vet_user(site),
            "is_active": "on",
        },
    )

    assert page.status_code == 200
    assert "ezyVet has no active vet user" in page.content.decode()
    assert not world.a.clinic.vets.filter(last_name="Stone").exists()


def test_a_vets_pims_user_changed_in_the_clinic_admin_is_audited(world: World) -> None:
    from tests.clinics.test_onboarding import _Form  # what a browser would submit

    team = login(world.onboarding)  # clinic B is on an agent: the id is typed
    url = reverse("admin:clinics_clinic_change", args=[world.b.clinic.pk])
    form = _Form()
    form.feed(team.get(url).content.decode())
    field = next(k for k, v in form.data.items() if k.endswith("-pims_user_id"))
    before = form.data[field]
    form.data[field] = "DR-77"

    response = team.post(url, form.data)

    assert response.status_code == 302, response.content.decode()[:3000]
    world.b.vet.refresh_from_db()
    assert world.b.vet.pims_user_id == "DR-77"
    event = AuditEvent.objects.get(action="vet.pims_user_changed")
    assert (event.actor, event.before, event.after) == (
        world.onboarding,
        {"pims_user_id": before},
        {"pims_user_id": "DR-77"},
    )


def test_a_vet_approving_an_owners_request_picks_a_consult_too(
    world: World, catalogue, site, ezy_pet, django_capture_on_commit_callbacks
) -> None:
    from prescriptions.services import prescription_mark_paid, rx_request_submit

    consult = next(c for c in site.records("consult") if c["animal_id"] == ezy_pet.pims_id)
    asked = rx_request_submit(
        clinic=world.a.clinic, patient=ezy_pet, product=catalogue.carprofen, quantity=30
    )
    url = reverse("prescriptions:rx-request-detail", args=["alder", asked.pk])
    vet = login(world.a.vet_user)
    assert consult["description"] in vet.get(url).content.decode()

    vet.post(
        url,
        {
            "action": "approve",
            "variant": "asked",
            "instructions": "One daily",
            "refills": "0",
            "consult_ref": consult["id"],
        },
    )
    asked.refresh_from_db()
    assert asked.prescription is not None
    assert asked.prescription.consult_ref == consult["id"]
    prescription_mark_paid(prescription=asked.prescription, actor=world.a.staff)
    deliver_all(django_capture_on_commit_callbacks)

    [record] = ezyvet_records(site, asked.prescription)
    assert record["consult_id"] == consult["id"]


# --- a prescriber to check -------------------------------------------------------------------


def _prescribers_page(user) -> str:
    return login(user).get(reverse("clinics:prescribers", args=["alder"])).content.decode()


@pytest.mark.parametrize(
    ("title", "first", "last", "warned"),
    [
        ("Dr", "Helen", "Marsh", True),
        ("Dr", "Wendy", "Heathcote", True),
        ("Dr.", "william", "HEATH", False),  # case and title do not count
        ("", "W.", "Heath, DVM", False),  # an initial and post-nominals are the same person
    ],
)
def test_a_vet_mapped_to_a_user_ezyvet_names_otherwise_is_flagged(
    world: World, site, ezyvet_clinic, clinic_admin, title, first, last, warned
) -> None:
    vet = world.a.vet
    vet.first_name, vet.last_name = "William", "Heath"
    vet.save()
    site.update_record(
        "user", vet.pims_user_id, {"title": title, "first_name": first, "last_name": last}
    )
    another_user = next(u for u in _vet_users(site) if u != vet.pims_user_id)
    other = VetFactory(
        clinic=world.a.clinic, first_name="Ada", last_name="Stone", pims_user_id=another_user
    )
    user_calls = len([e for e in site.request_log() if e["endpoint"] == "user"])

    page = _prescribers_page(clinic_admin)

    row = _row(page, vet)
    pims_name = " ".join(part for part in (title, first, last) if part)
    assert f"{pims_name} · ezyVet user {vet.pims_user_id}" in row
    said = f"The practice system calls this user {pims_name}: check this is Dr William Heath."
    assert (said in row) is warned
    assert ('data-testid="prescriber-name-differs"' in row) is warned
    assert ("Name differs" in row) is warned
    summary = "1 vet is mapped to a practice-system user with another name"
    # Ada Stone is none of the emulator's vets: her row is flagged whatever Heath's user is.
    assert 'data-testid="prescriber-name-differs"' in _row(page, other)
    assert summary.replace("1 vet is", "2 vets are") in page if warned else summary in page
    # The names come with the one list of ezyVet's vet users, not a call per vet.
    assert len([e for e in site.request_log() if e["endpoint"] == "user"]) == user_calls + 1


def test_a_practice_system_user_mapped_to_two_vets_is_flagged_on_both(
    world: World, clinic_admin
) -> None:
    # The database refuses one id twice in a clinic; the same id with a space around it (a
    # path that does not trim, such as an import or a shell) is one user all the same: VetSync
    # trims the id whenever it maps a vet.
    world.a.vet.pims_user_id = "DR-7"
    world.a.vet.save()
    other = VetFactory(clinic=world.a.clinic, pims_user_id=" DR-7 ")
    alone = VetFactory(clinic=world.a.clinic, pims_user_id="DR-8")

    page = _prescribers_page(clinic_admin)

    assert "2 vets share a practice-system user" in page
    assert f"This practice-system user is also {other}: each vet needs" in _row(page, world.a.vet)
    assert f"This practice-system user is also {world.a.vet}: each vet" in _row(page, other)
    assert "Shared user" not in _row(page, alone)
    assert 'data-testid="prescriber-name-differs"' not in page  # no names off ezyVet


def test_a_vet_mapped_to_their_own_user_is_not_flagged(
    world: World, site, ezyvet_clinic, clinic_admin
) -> None:
    user = site.record("user", world.a.vet.pims_user_id)
    world.a.vet.first_name, world.a.vet.last_name = user["first_name"], user["last_name"]
    world.a.vet.save()

    page = _prescribers_page(clinic_admin)

    assert 'data-testid="prescriber-warnings"' not in page
    assert "Name differs" not in page and "Shared user" not in page


@pytest.mark.parametrize(
    ("vet", "pims_user", "differ"),
    [
        (("William", "Heath"), ("Dr. william", "HEATH"), False),
        (("William", "Heath"), ("W", "Heath"), False),
        (("William James", "Heath"), ("William", "Heath"), False),
        (("Zoë", "O'Brien"), ("zoe", "OBrien"), False),
        (("Anne", "Smith-Jones"), ("Anne", "Smith  Jones"), False),
        (("William", "Heath"), ("", ""), False),  # nothing to compare
        (("William", "Heath"), ("Helen", "Marsh"), True),
        (("William", "Heath"), ("Helen", "Heath"), True),
        (("William", "Heath"), ("William", "Heathcote"), True),
    ],
)
def test_names_are_compared_as_people_write_them(vet, pims_user, differ) -> None:
    assert (
        names_differ(
            first_name=vet[0], last_name=vet[1], other_first=pims_user[0], other_last=pims_user[1]
        )
        is differ
    )


def _row(page: str, vet) -> str:
    match = re.search(rf'<tr data-testid="prescriber-{vet.pk}".*?</tr>', page, re.S)
    assert match is not None, f"no row for {vet}"
    return match.group(0)
