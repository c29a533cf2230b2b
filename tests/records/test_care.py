"""Pet Owner Care: cross-clinic lookup, the care client page, owner-requested changes, the log."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from clinics.models import AuditEvent
from records import care
from records.models import Client, ManualUpdate
from tests.conftest import World, login
from tests.factories import ClientFactory, PatientFactory


def _search(world: World, q: str) -> Any:
    return login(world.care).get(reverse("care:search"), {"q": q})


def _result_rows(html: str) -> str:
    return html.split('data-testid="care-results"', 1)[-1]


@pytest.fixture
def whitfields(world: World) -> dict[str, Client]:
    dana = ClientFactory(
        clinic=world.a.clinic,
        first_name="Dana",
        last_name="Whitfield",
        email="dana.whitfield@example.org",
        phone="(503) 555-0142",
        postcode="97201",
    )
    PatientFactory(client=dana, name="Biscuit")
    dan = ClientFactory(
        clinic=world.b.clinic,
        first_name="Dan",
        last_name="Whitfield",
        email="dan.w@example.org",
        phone="971 555 0199",
        postcode="97301",
    )
    PatientFactory(client=dan, name="Luna", species="Feline")
    other = ClientFactory(
        clinic=world.b.clinic,
        first_name="Priya",
        last_name="Okafor",
        email="priya@example.org",
        phone="+1 360 555 0123",
        postcode="98660",
    )
    return {"dana": dana, "dan": dan, "other": other}


def test_misspelled_name_finds_clients_of_every_clinic_with_why(
    world: World, whitfields: dict[str, Client]
) -> None:
    response = _search(world, "Whitfeild")
    assert response.status_code == 200
    rows = _result_rows(response.text)
    assert "Alder Vet Clinic" in rows and "Birch Animal Hospital" in rows
    assert "Dana Whitfield" in rows and "Dan Whitfield" in rows
    assert "Okafor" not in rows
    assert "Biscuit" in rows and "Luna" in rows  # their pets
    assert "is close to “whitfeild” (spelling differs" in rows


def test_name_with_a_typo_and_a_first_name_ranks_the_right_person_first(
    world: World, whitfields: dict[str, Client]
) -> None:
    search = care.clients_find("dana whitfeild")
    assert search.results[0].client == whitfields["dana"]


def test_phone_typed_with_other_punctuation_matches(
    world: World, whitfields: dict[str, Client]
) -> None:
    for typed in ("503.555.0142", "+1 503 555 0142", "5035550142"):
        rows = _result_rows(_search(world, typed).text)
        assert "Dana Whitfield" in rows, typed
        assert "Phone (503) 555-0142 is the number given" in rows
        assert "Dan Whitfield" not in rows


def test_email_and_postcode_lookups(world: World, whitfields: dict[str, Client]) -> None:
    rows = _result_rows(_search(world, "DAN.W@example.org").text)
    assert "Dan Whitfield" in rows and "Dana Whitfield" not in rows
    assert "Email dan.w@example.org is the address given" in rows

    rows = _result_rows(_search(world, "98660").text)
    assert "Priya Okafor" in rows and "Whitfield" not in rows
    assert "Postcode 98660" in rows

    # A name narrowed by a postcode: one Whitfield, not the other.
    rows = _result_rows(_search(world, "whitfield 97301").text)
    assert "Dan Whitfield" in rows and "Dana Whitfield" not in rows


def test_no_match_says_so_and_order_numbers_are_not_faked(
    world: World, whitfields: dict[str, Client]
) -> None:
    page = _search(world, "ORD-10442").text
    assert 'data-testid="no-results"' in page
    assert "Order number (ORD-000123)" in page


def test_a_registered_lookup_finds_clients_by_order_number(
    world: World, whitfields: dict[str, Client]
) -> None:
    dan = whitfields["dan"]
    lookup = care.CareLookup(
        key="order",
        label="Order number",
        find=lambda q: [care.CareHit(dan.pk, f"Order {q}")] if q == "ORD-10442" else [],
    )
    care.register_care_lookup(lookup)
    try:
        page = _search(world, "ORD-10442").text
    finally:
        care.unregister_care_lookup("order")
    rows = _result_rows(page)
    assert "Dan Whitfield" in rows and "Order ORD-10442" in rows


def test_every_search_is_logged_with_query_who_and_count(
    world: World, whitfields: dict[str, Client]
) -> None:
    _search(world, "Whitfeild")
    _search(world, "nobody-like-this")
    events = list(AuditEvent.objects.filter(action="care.search").order_by("id"))
    assert [(e.after["query"], e.after["results"]) for e in events] == [
        ("Whitfeild", 2),
        ("nobody-like-this", 0),
    ]
    assert all(e.actor == world.care and e.created_at for e in events)


def test_opening_a_client_is_logged_and_shows_details_pets_and_pending(
    world: World, whitfields: dict[str, Client]
) -> None:
    dana = whitfields["dana"]
    ManualUpdate.objects.create(
        clinic=dana.clinic,
        client=dana,
        kind=ManualUpdate.Kind.CLIENT_ADDRESS,
        current={"line1": dana.address_line1},
        proposed={"line1": "9 New Rd"},
    )
    page = login(world.care).get(reverse("care:client", args=[dana.pk])).text
    assert "Dana Whitfield" in page and "Alder Vet Clinic" in page
    assert "dana.whitfield@example.org" in page and "(503) 555-0142" in page
    assert "Biscuit" in page
    assert "9 New Rd" in page  # the held PIMS address
    assert 'data-testid="panel-prescriptions"' in page
    event = AuditEvent.objects.get(action="care.client_opened")
    assert event.actor == world.care
    assert event.object_id == str(dana.pk) and event.clinic == world.a.clinic


def _change(world: World, client: Client, **values: str) -> Any:
    data = care.owner_change_initial(client) | values
    return login(world.care).post(reverse("care:client-change", args=[client.pk]), data)


def test_a_refused_owner_change_that_shows_the_client_is_logged_as_opened(
    world: World, whitfields: dict[str, Client]
) -> None:
    # A POST straight to the change page (no verification note) shows the client's name and
    # clinic: that is opening the record, and the log says so, as for a GET.
    dana = whitfields["dana"]
    response = login(world.care).post(reverse("care:client-change", args=[dana.pk]), {})
    assert response.status_code == 200
    assert dana.full_name in response.text and "Alder Vet Clinic" in response.text
    assert "Note how you verified the caller" in response.text
    event = AuditEvent.objects.get(action=care.OPENED_ACTION)
    assert (event.actor, event.object_id) == (world.care, str(dana.pk))
    dana.refresh_from_db()
    assert dana.last_name == "Whitfield"  # nothing changed


def test_owner_change_applies_and_shows_on_the_clinics_timeline(
    world: World, whitfields: dict[str, Client]
) -> None:
    dana = whitfields["dana"]
    old_line1 = dana.address_line1
    response = _change(
        world,
        dana,
        last_name="Whitfield-Ng",
        address_line1="12 Elm St",
        phone="503-555-0199",
        verification="Confirmed Biscuit's birth date and the postcode",
    )
    assert response.status_code == 302
    dana.refresh_from_db()
    assert (dana.last_name, dana.address_line1) == ("Whitfield-Ng", "12 Elm St")
    assert dana.phone_normalized == "+15035550199"
    event = AuditEvent.objects.get(action="care.owner_change")
    assert event.before == {
        "last_name": "Whitfield",
        "address_line1": old_line1,
        "phone": "(503) 555-0142",
    }
    assert "Confirmed Biscuit's birth date" in event.after["reason"]
    # The clinic's staff see it on the client's page, marked as Pet Owner Care's.
    page = login(world.a.staff).get(reverse("records:client-detail", args=["alder", dana.pk])).text
    assert "Pet Owner Care change at the owner&#x27;s request" in page
    assert "Whitfield-Ng" in page and "Confirmed Biscuit&#x27;s birth date" in page
    # And the search finds the new name and phone.
    assert "Whitfield-Ng" in _result_rows(_search(world, "503 555 0199").text)


def test_owner_change_needs_the_verification_note(
    world: World, whitfields: dict[str, Client]
) -> None:
    dana = whitfields["dana"]
    response = _change(world, dana, email="new@example.org", verification="  ")
    assert response.status_code == 200
    assert "Note how you verified the caller" in response.text
    dana.refresh_from_db()
    assert dana.email == "dana.whitfield@example.org"
    assert not AuditEvent.objects.filter(action="care.owner_change").exists()


def test_owner_change_refreshes_a_held_pims_address(
    world: World, whitfields: dict[str, Client]
) -> None:
    dana = whitfields["dana"]
    held = ManualUpdate.objects.create(
        clinic=dana.clinic,
        client=dana,
        kind=ManualUpdate.Kind.CLIENT_ADDRESS,
        current={"line1": dana.address_line1, "postcode": "97201"},
        proposed={"line1": "9 New Rd", "postcode": "97202"},
    )
    _change(world, dana, address_line1="12 Elm St", verification="DOB and postcode")
    held.refresh_from_db()
    assert held.status == ManualUpdate.Status.PENDING
    assert held.current["line1"] == "12 Elm St"


def test_nothing_changed_is_refused(world: World, whitfields: dict[str, Client]) -> None:
    response = _change(world, whitfields["dana"], verification="DOB")
    assert "Nothing changed" in response.text


@pytest.mark.parametrize("who", ["staff", "vet"])
def test_clinic_users_get_403_on_every_care_page(
    world: World, whitfields: dict[str, Client], who: str
) -> None:
    user = world.a.staff if who == "staff" else world.a.vet_user
    dana = whitfields["dana"]
    http = login(user)
    for url in (
        reverse("care:search") + "?q=whitfield",
        reverse("care:client", args=[dana.pk]),
        reverse("care:client-change", args=[dana.pk]),
        reverse("care:log"),
    ):
        assert http.get(url).status_code == 403, url
    assert http.post(reverse("care:client-change", args=[dana.pk]), {}).status_code == 403
    assert not AuditEvent.objects.filter(action__startswith="care.").exists()


def test_anonymous_is_sent_to_log_in(world: World) -> None:
    from django.test import Client as HttpClient

    response = HttpClient().get(reverse("care:search"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def _make_lead(world: World) -> None:
    world.care.user_permissions.add(Permission.objects.get(codename="view_care_log"))


def test_audit_log_is_for_leads_only(world: World) -> None:
    assert login(world.care).get(reverse("care:log")).status_code == 403
    _make_lead(world)
    assert login(world.care).get(reverse("care:log")).status_code == 200


def test_leads_filter_the_log_by_who_action_date_and_text(
    world: World, whitfields: dict[str, Client]
) -> None:
    from django.contrib.auth.models import Group

    from clinics.access import CARE_GROUP
    from tests.factories import UserFactory

    other = UserFactory(username="agent-two")
    other.groups.add(Group.objects.get(name=CARE_GROUP))
    _search(world, "Whitfeild")
    login(other).get(reverse("care:search"), {"q": "okafor"})
    login(other).get(reverse("care:client", args=[whitfields["other"].pk]))
    old = AuditEvent.objects.create(
        action="care.search", actor_label="carer", after={"query": "ancient", "results": 0}
    )
    AuditEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=40))
    AuditEvent.objects.create(action="sync.client_updated", actor_label="sync", after={})
    _make_lead(world)
    http = login(world.care)
    url = reverse("care:log")

    def shown(**params: str) -> str:
        return http.get(url, params).text.split('data-testid="care-log"', 1)[-1]

    everything = shown()
    assert "Whitfeild" in everything and "okafor" in everything and "ancient" in everything
    assert "<td>sync</td>" not in everything  # other audit events stay out of the care log
    assert "Priya Okafor" in everything
    by_who = shown(who="agent-two")
    assert "okafor" in by_who and "Whitfeild" not in by_who
    opened = shown(action="care.client_opened")
    assert "Priya Okafor" in opened and "Whitfeild" not in opened
    recent = shown(since=(timezone.localdate() - dt.timedelta(days=7)).isoformat())
    assert "ancient" not in recent and "Whitfeild" in recent
    old_only = shown(until=(timezone.localdate() - dt.timedelta(days=30)).isoformat())
    assert "ancient" in old_only and "Whitfeild" not in old_only
    text = shown(text="whitf")
    assert "Whitfeild" in text and "okafor" not in text


def test_log_pages(world: World) -> None:
    AuditEvent.objects.bulk_create(
        AuditEvent(
            action="care.search", actor_label="carer", after={"query": f"q{i}", "results": 0}
        )
        for i in range(60)
    )
    _make_lead(world)
    http = login(world.care)
    first = http.get(reverse("care:log")).text
    assert "Page 1 of 2" in first
    second = http.get(reverse("care:log"), {"page": 2}).text
    assert second.count('<tr data-testid="log-') == 10


def test_a_typo_finds_the_client_through_the_name_dictionary(world: World) -> None:
    from records.care import care_name_tokens_refresh, clients_find

    ClientFactory(clinic=world.a.clinic, first_name="Dana", last_name="Whitfield")
    ClientFactory(clinic=world.b.clinic, first_name="Sam", last_name="Okafor")
    care_name_tokens_refresh()  # what the beat task does every few minutes
    # A client added after the last refresh is still found by the name as typed.
    ClientFactory(clinic=world.b.clinic, first_name="Lee", last_name="Whitfeild")

    found = {r.client.last_name for r in clients_find("whitfeild").results}

    assert found == {"Whitfield", "Whitfeild"}
    assert {r.client.last_name for r in clients_find("okafr").results} == {"Okafor"}
    # The start of a surname being typed, and a first name with a misspelt surname.
    assert "Whitfield" in {r.client.last_name for r in clients_find("whitf").results}
    best = clients_find("dana whitfeild").results[0].client
    assert (best.first_name, best.last_name) == ("Dana", "Whitfield")
    # A name like nothing in the dictionary, added since its refresh, is found as typed.
    ClientFactory(clinic=world.a.clinic, first_name="Zed", last_name="Quuxley")
    assert [r.client.last_name for r in clients_find("quuxley").results] == ["Quuxley"]
