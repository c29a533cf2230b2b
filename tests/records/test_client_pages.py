"""Clinic staff's client list, client page and pet page: search, provenance, PIMS differs,
inline manual updates, merge story, history, and a bounded number of queries per page."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse

from clinics.audit import audit_log
from clinics.display import person_name
from clinics.models import AuditEvent
from records.merging import RULE_MERGE_ACTION
from records.models import (
    Client,
    ManualUpdate,
    Patient,
    WeightRecord,
)
from records.panels import Panel, register_client_panel, unregister_panel
from tests.conftest import World, login
from tests.factories import ClientFactory, PatientFactory
from tests.records.batches import batch, ingest, owner, pet
from tests.records.pages import (
    LATER,
    LATEST,
    client_url,
    dana_in_store,
    list_url,
    names_listed,
    pet_url,
    possible_match_pair,
    section,
)

# --- search --------------------------------------------------------------------------------


@pytest.fixture
def searchable(world: World) -> dict[str, Client]:
    ingest(
        world.a.clinic,
        batch(
            owner(
                "C-100",
                first_name="Dana",
                last_name="Whitfield",
                email="dana.whitfield@example.org",
                phone="+1 503 555 0142",
                address={"postcode": "97205"},
                patients=[pet("P-100", name="Biscuit")],
            ),
            owner(
                "C-200",
                first_name="Sam",
                last_name="Okafor",
                email="sam@okafor.net",
                phone="(971) 555-0199",
                address={"postcode": "97301"},
                patients=[pet("P-200", name="Juniper")],
            ),
        ),
    )
    store = ClientFactory(
        clinic=world.a.clinic,
        customer_ref="HD-77",
        first_name="Avery",
        last_name="Quinn",
        email="avery@shop.example",
        phone="",
        postcode="97030",
    )
    PatientFactory(clinic=world.a.clinic, client=store, name="Pickles")
    ClientFactory(
        clinic=world.a.clinic,
        first_name="Kit",
        last_name="O'Brien",
        email="kit@example.net",
        phone="",
        postcode="10001",
    )
    # Another clinic's client with the same details is never found.
    ingest(world.b.clinic, batch(owner("C-100", patients=[pet("P-100", name="Biscuit")])))
    return {
        "dana": Client.objects.get(clinic=world.a.clinic, pims_id="C-100"),
        "sam": Client.objects.get(clinic=world.a.clinic, pims_id="C-200"),
        "avery": store,
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("whit", ["Whitfield, Dana"]),  # last-name prefix, any case
        ("DANA", ["Whitfield, Dana"]),  # first name
        ("dana whitfield", ["Whitfield, Dana"]),  # both words must match
        ("Whitfield, Dana", ["Whitfield, Dana"]),  # as the list shows the name
        ("o\u2019brien", ["O&#x27;Brien, Kit"]),  # a curly apostrophe, as phones type it
        ("o'b", ["O&#x27;Brien, Kit"]),
        ("sam@okafor", ["Okafor, Sam"]),  # email prefix
        ("dana.whitfield@example.org", ["Whitfield, Dana"]),  # full email
        ("(503) 555-0142", ["Whitfield, Dana"]),  # stored as +1 503 555 0142
        ("503.555.0142", ["Whitfield, Dana"]),
        ("+1-503-555-0142", ["Whitfield, Dana"]),
        ("5035550142", ["Whitfield, Dana"]),
        ("971 555", ["Okafor, Sam"]),  # a phone being typed
        ("+1 971 555 0199", ["Okafor, Sam"]),  # stored as (971) 555-0199
        ("97301", ["Okafor, Sam"]),  # postcode
        ("C-200", ["Okafor, Sam"]),  # PIMS id
        ("c-100", ["Whitfield, Dana"]),  # PIMS id typed in lower case
        ("HD-77", ["Quinn, Avery"]),  # store ref
        ("juniper", ["Okafor, Sam"]),  # pet name
        ("pick", ["Quinn, Avery"]),  # pet-name prefix
        ("zebra", []),
    ],
)
def test_search_finds_clients_by_each_key(
    world: World, searchable: dict[str, Client], query: str, expected: list[str]
) -> None:
    response = login(world.a.staff).get(list_url(world, q=query))
    assert response.status_code == 200
    assert names_listed(response) == expected
    if not expected:
        assert "No clients match" in response.content.decode()


def test_a_search_ending_in_the_last_code_point_finds_what_starts_so(world: World) -> None:
    """U+10FFFF has no character after it to bound a prefix by (it was a 500)."""
    last = chr(0x10FFFF)
    ClientFactory(clinic=world.a.clinic, first_name="Max", last_name=f"Zed{last}{last}ka")
    ClientFactory(clinic=world.a.clinic, first_name="Mo", last_name="Zedd")
    ClientFactory(clinic=world.a.clinic, first_name="Mia", last_name="Zee")
    for query, expected in (
        (f"zed{last}", [f"Zed{last}{last}ka, Max"]),
        (f"zed{last}{last}k", [f"Zed{last}{last}ka, Max"]),
        ("zed", [f"Zed{last}{last}ka, Max", "Zedd, Mo"]),
        (last * 2, []),
    ):
        response = login(world.a.staff).get(list_url(world, q=query))
        assert response.status_code == 200
        assert sorted(names_listed(response)) == sorted(expected)


def test_search_as_you_type_returns_only_the_results_fragment(
    world: World, searchable: dict[str, Client]
) -> None:
    response = login(world.a.staff).get(
        list_url(world, q="okaf"), headers={"HX-Request": "true", "HX-Target": "client-results"}
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="client-results"')
    assert names_listed(response) == ["Okafor, Sam"]
    assert "<html" not in html


# --- filters, sorting, pages ---------------------------------------------------------------


def test_filters_pick_the_right_clients(world: World) -> None:
    clinic = world.a.clinic
    # merged: a store customer the PIMS client C-1 merges into (same email, close name)
    dana_in_store(clinic, address_line1="12 Alder St", postcode="97205")
    ClientFactory(clinic=clinic, customer_ref="HD-2", first_name="Hugo", last_name="Store")
    ingest(
        clinic,
        batch(
            owner(),  # merges into HD-1
            owner("C-2", first_name="Ina", last_name="Active", email="ina@x.org", patients=[]),
            owner(
                "C-3",
                first_name="Olly",
                last_name="Gone",
                email="olly@x.org",
                active=False,
                patients=[pet("P-3", name="Ghost", deceased=True, deceased_on="2026-10-01")],
            ),
        ),
    )
    # pending: a name change held for staff
    ingest(
        clinic,
        batch(
            owner(
                "C-2",
                first_name="Ines",
                last_name="Active",
                email="ina@x.org",
                patients=[],
                modified_at=LATER,
            )
        ),
    )
    # duplicate: a possible match (same address, no pet) with a store customer
    possible_match_pair(clinic)
    assert ManualUpdate.objects.filter(kind="possible_match", status="pending").exists()
    staff = login(world.a.staff)

    def listed(flt: str) -> set[str]:
        return set(names_listed(staff.get(list_url(world, filter=flt))))

    assert listed("merged") == {"Whitfeld, Dana"}
    assert listed("home_delivery") == {"Store, Hugo", "Maybe, Pat"}
    assert listed("pims") == {"Active, Ina", "Gone, Olly", "Maybe, Robin"}
    assert listed("inactive") == {"Gone, Olly"}
    assert listed("deceased") == {"Gone, Olly"}
    assert listed("pending") == {"Active, Ina", "Maybe, Pat"}
    assert listed("duplicate") == {"Maybe, Pat", "Maybe, Robin"}
    empty = staff.get(list_url(world, filter="deceased", q="hugo"))
    assert names_listed(empty) == []
    assert "among “Has a deceased pet”" in empty.content.decode()


def test_a_merged_pims_copy_is_hidden_from_the_list(world: World) -> None:
    clinic = world.a.clinic
    possible_match_pair(clinic)
    match = ManualUpdate.objects.get(kind="possible_match")
    staff = login(world.a.staff)
    staff.post(
        reverse("records:update-action", args=[clinic.slug, match.pk]), {"action": "confirm"}
    )
    assert Client.objects.filter(clinic=clinic, merged_into__isnull=False).count() == 1
    assert names_listed(staff.get(list_url(world))) == ["Maybe, Pat"]
    assert names_listed(staff.get(list_url(world, q="maybe"))) == ["Maybe, Pat"]


def test_columns_sort_both_ways_and_pages_hold_fifty(world: World) -> None:
    for i in range(55):
        ClientFactory(
            clinic=world.a.clinic,
            first_name="F",
            last_name=f"Name{i:02d}",
            postcode=f"9{(54 - i):04d}",
        )
    staff = login(world.a.staff)
    first = names_listed(staff.get(list_url(world)))
    assert len(first) == 50 and first[0] == "Name00, F"
    assert names_listed(staff.get(list_url(world, page="2"))) == [
        f"Name{i}, F" for i in range(50, 55)
    ]
    assert names_listed(staff.get(list_url(world, sort="-name")))[0] == "Name54, F"
    assert names_listed(staff.get(list_url(world, sort="postcode")))[0] == "Name54, F"
    assert names_listed(staff.get(list_url(world, sort="-added")))[0] == "Name54, F"
    html = staff.get(list_url(world, sort="name")).content.decode()
    assert 'aria-sort="ascending"' in html and "sort=-name" in html


def test_a_page_number_below_one_shows_the_first_page(world: World) -> None:
    for i in range(55):
        ClientFactory(clinic=world.a.clinic, first_name="F", last_name=f"Name{i:02d}")
    staff = login(world.a.staff)
    for number in ("0", "-1", "-999"):
        response = staff.get(list_url(world, page=number))
        assert names_listed(response)[0] == "Name00, F"
        assert "Page 1 of 2" in response.content.decode()
    # Past the end is still the last page.
    assert names_listed(staff.get(list_url(world, page="3")))[0] == "Name50, F"


def test_an_empty_clinic_says_where_clients_come_from(world: World) -> None:
    html = login(world.a.staff).get(list_url(world)).content.decode()
    assert "No clients yet." in html


# --- the client page -----------------------------------------------------------------------


def test_provenance_follows_a_field_from_sync_to_an_accepted_manual_update(world: World) -> None:
    clinic = world.a.clinic
    ingest(clinic, batch(owner()))
    client = Client.objects.get(pims_id="C-1")
    staff = login(world.a.staff)

    page = staff.get(client_url(client))
    assert "Copied from the PIMS" in section(page, "source-name")

    ingest(clinic, batch(owner(first_name="Danielle", modified_at=LATER)))
    page = staff.get(client_url(client))
    assert "Copied from the PIMS" in section(page, "source-name")
    assert "PIMS has <strong>Danielle Whitfield</strong>" in section(page, "field-name")
    update = ManualUpdate.objects.get(kind="client_name", status="pending")
    pending = section(page, f"pending-{update.pk}")
    assert 'value="accept"' in pending and 'value="dismiss"' in pending

    # Accepted from the client page, staff land back on it.
    response = staff.post(
        reverse("records:update-action", args=[clinic.slug, update.pk]),
        {"action": "accept", "next": client_url(client)},
    )
    assert response.status_code == 302 and response["Location"] == client_url(client)
    page = staff.get(client_url(client))
    source = section(page, "source-name")
    assert "Accepted manual update" in source and f"by {person_name(world.a.staff)}" in source
    assert "differs-name" not in page.content.decode()
    # Fields nobody touched still say where they came from.
    assert "Copied from the PIMS" in section(page, "source-address")


def test_an_email_changed_in_the_pims_shows_as_applied_by_sync(world: World) -> None:
    ingest(world.a.clinic, batch(owner()))
    ingest(world.a.clinic, batch(owner(email="dana@new.example", modified_at=LATER)))
    page = login(world.a.staff).get(client_url(Client.objects.get()))
    assert "Changed in the PIMS, applied automatically" in section(page, "source-email")
    assert "dana@new.example" in section(page, "field-email")


def test_a_value_an_automatic_merge_filled_in_names_the_pims_once(world: World) -> None:
    customer = dana_in_store(world.a.clinic)
    biscuit = PatientFactory(clinic=world.a.clinic, client=customer, name="biscuit", species="")
    ingest(world.a.clinic, batch(owner()))
    biscuit.refresh_from_db()
    assert biscuit.pims_id == "P-1" and biscuit.species == "Canine"  # linked, filled in

    page = login(world.a.staff).get(pet_url(biscuit))
    species = _words(section(page, "source-species"))
    assert species.startswith("PIMS Filled in from the PIMS at an automatic merge on ")
    client_page = login(world.a.staff).get(client_url(customer))
    assert _words(section(client_page, "source-phone")).startswith(
        "PIMS Filled in from the PIMS at an automatic merge on "
    )


def _words(html: str) -> str:
    """The text of a page's cell as a person reads it (badge included)."""
    cell = html[html.index(">") + 1 : html.index("</td>")]
    return " ".join(re.sub(r"<[^>]+>", " ", cell).split())


def test_pims_differs_for_phone_shows_the_pims_value(world: World) -> None:
    ingest(world.a.clinic, batch(owner(phone="+1 503 555 0142")))
    client = Client.objects.get()
    staff = login(world.a.staff)
    assert "differs-phone" not in staff.get(client_url(client)).content.decode()

    # The same number written another way is not a difference.
    ingest(world.a.clinic, batch(owner(phone="(503) 555-0142", modified_at=LATER)))
    assert "differs-phone" not in staff.get(client_url(client)).content.decode()

    ingest(world.a.clinic, batch(owner(phone="503-555-0199", modified_at=LATEST)))
    client.refresh_from_db()
    assert client.phone == "+1 503 555 0142"  # never applied
    row = section(staff.get(client_url(client)), "field-phone")
    assert "(503) 555-0142" in row  # the clinic's national format; stored as it came
    assert "PIMS differs" in row and "PIMS has <strong>(503) 555-0199</strong>" in row
    assert "not applied, by policy" in row


def test_pims_differs_for_a_pets_breed_on_the_pet_page(world: World) -> None:
    ingest(world.a.clinic, batch(owner()))
    ingest(
        world.a.clinic,
        batch(owner(modified_at=LATER, patients=[pet(breed="Harrier", modified_at=LATER)])),
    )
    biscuit = Patient.objects.get()
    row = section(login(world.a.staff).get(pet_url(biscuit)), "field-breed")
    assert "Beagle" in row and "PIMS has <strong>Harrier</strong>" in row


def test_a_possible_match_is_confirmed_from_the_client_page(world: World) -> None:
    clinic = world.a.clinic
    customer = possible_match_pair(clinic)
    match = ManualUpdate.objects.get(kind="possible_match")
    staff = login(world.a.staff)
    page = staff.get(client_url(customer))
    assert 'value="confirm"' in section(page, f"match-{match.pk}")
    staff.post(
        reverse("records:update-action", args=[clinic.slug, match.pk]),
        {"action": "confirm", "next": client_url(customer)},
    )
    page = staff.get(client_url(customer))
    story = section(page, "merge-story")
    assert "C-4" in story and "confirmed by" in story and "unmerge-form" in story


def test_update_action_does_not_redirect_off_site(world: World) -> None:
    ingest(world.a.clinic, batch(owner()))
    ingest(world.a.clinic, batch(owner(first_name="Danielle", modified_at=LATER)))
    update = ManualUpdate.objects.get()
    response = login(world.a.staff).post(
        reverse("records:update-action", args=[world.a.clinic.slug, update.pk]),
        {"action": "accept", "next": "https://evil.example/"},
    )
    assert response["Location"] == reverse("records:update-queue", args=[world.a.clinic.slug])


def test_panels_from_other_apps_appear_on_the_client_page(world: World) -> None:
    client = ClientFactory(clinic=world.a.clinic)

    def prescriptions(request: Any, record: Client) -> Panel:
        return Panel(
            title="Prescriptions and orders",
            template="records/_field_row.html",
            context={},
            key="rx",
        )

    register_client_panel(prescriptions)
    try:
        page = login(world.a.staff).get(client_url(client))
    finally:
        unregister_panel(prescriptions)
    assert "Prescriptions and orders" in section(page, "panel-rx")


# --- history -------------------------------------------------------------------------------


def test_timeline_lists_sync_staff_and_owner_requested_changes_in_order(world: World) -> None:
    clinic = world.a.clinic
    ingest(clinic, batch(owner()))
    client = Client.objects.get()
    ingest(clinic, batch(owner(email="dana@new.example", first_name="Danielle", modified_at=LATER)))
    update = ManualUpdate.objects.get(kind="client_name")
    staff = login(world.a.staff)
    staff.post(
        reverse("records:update-action", args=[clinic.slug, update.pk]), {"action": "accept"}
    )
    # Pet Owner Care records a change the owner asked for (the care feature writes this).
    audit_log(
        action="care.client_updated",
        actor=world.care,
        clinic=clinic,
        obj=client,
        before={"phone": "+1 503 555 0142"},
        after={"phone": "+1 503 555 7777"},
    )

    page = staff.get(client_url(client))
    html = section(page, "timeline")
    titles = re.findall(
        r"<strong>([^<]+)</strong>",
        page.content.decode()[page.content.decode().index('data-testid="timeline"') :],
    )
    care = titles.index("Pet Owner Care change at the owner&#x27;s request")
    accepted = titles.index("Staff accepted the PIMS&#x27;s client name")
    applied = titles.index("Changed in the PIMS, applied automatically")
    copied = titles.index("Copied from the PIMS (new client, PIMS id C-1)")
    assert care < accepted < applied < copied  # newest first
    assert "dana@new.example" in html and "Danielle" in html and "+1 503 555 7777" in html
    # The owner's change is also the phone's provenance.
    assert "Pet Owner Care change at the owner" in section(page, "source-phone")


def test_an_automatic_merge_shows_its_evidence_in_words_on_the_timeline(world: World) -> None:
    clinic = world.a.clinic
    customer = dana_in_store(clinic)
    ingest(clinic, batch(owner(patients=[])))
    customer.refresh_from_db()
    assert customer.pims_id == "C-1"  # merged automatically

    model = AuditEvent.objects.get(action=RULE_MERGE_ACTION).after["model"]

    html = section(login(world.a.staff).get(client_url(customer)), "timeline")
    entry = html[html.index("Merged automatically with PIMS record C-1") :]
    entry = entry[: entry.find('<li class="tl-')]
    # The probability as the review queue writes it, the thresholds in words.
    assert re.search(r"Match probability (&gt; )?\d+(\.\d+)? %", entry)
    assert f"model {model}" in entry
    assert "thresholds: merge at 99.90 %, suggest at 50 %" in entry
    # Evidence, not values of the record that changed from nothing; no Python dict.
    assert "Probability:" not in entry and "Thresholds:" not in entry and "Model:" not in entry
    assert "{" not in entry and "&#x27;" not in entry


def test_structured_values_on_the_timeline_are_written_out(world: World) -> None:
    client = ClientFactory(clinic=world.a.clinic, customer_ref="HD-1")
    audit_log(
        action="customer.imported_update",
        actor=None,
        clinic=world.a.clinic,
        obj=client,
        before={},
        after={"delivery": {"day": "Tuesday", "signed": True}, "tags": ["vip", "senior"]},
    )
    html = section(login(world.a.staff).get(client_url(client)), "timeline")
    assert "Delivery: <del>—</del> → <ins>Day: Tuesday; Signed: yes</ins>" in html
    assert "Tags: <del>—</del> → <ins>vip, senior</ins>" in html


def test_a_pet_page_shows_weights_deceased_date_and_renames(world: World) -> None:
    clinic = world.a.clinic
    ingest(clinic, batch(owner(patients=[pet(weight=11.4)])))
    ingest(
        clinic,
        batch(
            owner(
                modified_at=LATER, patients=[pet(weight=12.0, name="Biscuit II", modified_at=LATER)]
            )
        ),
    )
    rename = ManualUpdate.objects.get(kind="pet_name")
    staff = login(world.a.staff)
    staff.post(
        reverse("records:update-action", args=[clinic.slug, rename.pk]),
        {"action": "accept", "same_pet": "on", "reason": "New family name"},
    )
    ingest(
        clinic,
        batch(
            owner(
                modified_at=LATEST,
                patients=[
                    pet(
                        weight=12.5,
                        name="Biscuit II",
                        deceased=True,
                        deceased_on="2026-12-04",
                        modified_at=LATEST,
                    )
                ],
            )
        ),
    )
    biscuit = Patient.objects.get()
    page = staff.get(pet_url(biscuit))
    html = page.content.decode()
    assert WeightRecord.objects.filter(patient=biscuit).count() == 3
    assert html.count('data-testid="weight-point"') == 3
    assert "<polyline" in html and "style=" not in section(page, "weight-chart")
    assert "12.5 kg on 5 Dec 2026" in html
    assert "Deceased 4 Dec 2026" in section(page, "deceased")
    renames = section(page, "renames")
    assert "<strong>Biscuit</strong> → <strong>Biscuit II</strong>" in renames
    assert "New family name" in renames and person_name(world.a.staff) in renames
    assert "alder-staff" not in renames  # people by name, not by login
    assert "Accepted manual update" in section(page, "source-name")
    assert "Changed in the PIMS, applied automatically" in section(page, "timeline")


# --- bounded queries -----------------------------------------------------------------------


def _busy_clinic(world: World, clients: int) -> None:
    clinic = world.a.clinic
    entries = [
        owner(
            f"C-{i}",
            first_name=f"First{i}",
            last_name=f"Last{i}",
            email=f"o{i}@x.org",
            phone=f"503555{i:04d}",
            patients=[pet(f"P-{i}-a", name=f"Pet{i}a"), pet(f"P-{i}-b", name=f"Pet{i}b")],
        )
        for i in range(clients)
    ]
    ingest(clinic, batch(*entries))
    later = [
        owner(
            f"C-{i}",
            first_name=f"Renamed{i}",
            last_name=f"Last{i}",
            email=f"n{i}@x.org",
            phone=f"503555{i:04d}",
            modified_at=LATER,
            patients=[
                pet(f"P-{i}-a", name=f"Pet{i}a", weight=12 + i, modified_at=LATER),
                pet(f"P-{i}-b", name=f"Pet{i}b2", modified_at=LATER),
            ],
        )
        for i in range(clients)
    ]
    ingest(clinic, batch(*later))


@pytest.mark.parametrize("clients", [3, 60])
def test_pages_run_a_bounded_number_of_queries(
    world: World, django_assert_max_num_queries: Any, clients: int
) -> None:
    _busy_clinic(world, clients)
    customer = _merged_customer(world)
    staff = login(world.a.staff)
    staff.get(list_url(world))  # the idle timeout's once-a-minute session write happens here
    client = Client.objects.get(pims_id="C-1")
    patient = Patient.objects.get(pims_id="P-1-b")
    for url in (
        list_url(world),
        list_url(world, q="last1"),
        list_url(world, q="(503) 555-0001"),
        list_url(world, q="pet1", filter="pending", sort="-added"),
        list_url(world, filter="deceased"),
    ):
        # The whole request: the session's user (with whether they need a second factor),
        # the clinic, the page.
        with django_assert_max_num_queries(10):
            assert staff.get(url).status_code == 200
    # Issue 18: at most 10 queries, prescriptions, orders and Rx requests included; a
    # home-delivery customer's pages also tell its merge story.
    pages = [client_url(client), pet_url(patient), client_url(customer)]
    pages.append(pet_url(customer.patients.get(pims_id="P-M")))  # (URLs cost a query)
    for url in pages:
        with django_assert_max_num_queries(10):
            page = staff.get(url)
        assert page.status_code == 200
    assert "Waiting for staff" in staff.get(client_url(client)).content.decode()
    assert "merge-story" in staff.get(client_url(customer)).content.decode()


def _merged_customer(world: World) -> Client:
    """A home-delivery customer a PIMS client was merged into, with a pet of each side."""
    customer = dana_in_store(
        world.a.clinic, customer_ref="HD-M", address_line1="12 Alder Street", postcode="97205"
    )
    PatientFactory(clinic=world.a.clinic, client=customer, name="biscuit", weight=None)
    ingest(
        world.a.clinic,
        batch(owner("C-M", patients=[pet("P-B", name="Biscuit"), pet("P-M", name="Rex")])),
    )
    customer.refresh_from_db()
    assert customer.pims_id == "C-M"
    return customer


# --- the dashboard -------------------------------------------------------------------------


def test_dashboard_counts_link_to_the_filtered_lists(world: World) -> None:
    html = login(world.a.staff).get(reverse("clinic-dashboard", args=["alder"])).content.decode()
    ingest(world.a.clinic, batch(owner()))
    ingest(world.a.clinic, batch(owner(first_name="Danielle", modified_at=LATER)))
    html = login(world.a.staff).get(reverse("clinic-dashboard", args=["alder"])).content.decode()
    for flt in ("customer", "deceased", "pending"):
        assert f"/c/alder/clients/?filter={flt}" in html


def test_dashboard_counts_of_one_read_in_the_singular(world: World) -> None:
    customer = ClientFactory(clinic=world.a.clinic, customer_ref="HD-1")
    PatientFactory(client=customer)
    ManualUpdate.objects.create(
        clinic=world.a.clinic,
        kind=ManualUpdate.Kind.POSSIBLE_MATCH,
        client=customer,
        candidate=ClientFactory(clinic=world.b.clinic),  # keeps Alder at one client
    )

    html = login(world.a.staff).get(reverse("clinic-dashboard", args=["alder"])).content.decode()
    labels = re.findall(r'<span class="label">([^<]+)</span>', html)

    for label in ("client", "pet", "home-delivery customer", "manual update waiting"):
        assert label in labels
    assert "possible match" in labels
    assert not any(label.startswith("possible matches") for label in labels)


def test_client_counts_have_thousands_separators(world: World) -> None:
    clinic = world.a.clinic
    Client.objects.bulk_create(
        Client(clinic=clinic, first_name="Sam", last_name=f"Owner{i:04d}") for i in range(1001)
    )

    staff = login(world.a.staff)
    url = reverse("records:client-list", args=["alder"])
    page = re.sub(r"\s+", " ", staff.get(url).content.decode())
    typed = staff.get(url, {"q": ""}, headers={"HX-Request": "true"}).content.decode()

    assert "Page 1 of 21 · 1,001 in all" in page
    assert "1,001 clients." in typed  # what a screen reader hears as the list changes


def test_search_warns_of_a_database_whose_collation_is_not_byte_order(db: None) -> None:
    from django.db import connection

    from records.checks import byte_order, search_collation_check

    assert byte_order("c", "C.UTF-8") and byte_order("c", "C") and byte_order("b", "C.UTF-8")
    assert not byte_order("c", "en_US.UTF-8")
    assert not byte_order("i", "C.UTF-8")  # ICU decides, whatever datcollate says
    # The databases the suite runs on (SQLite; PostgreSQL created with a C collation) pass.
    assert search_collation_check(databases=["default"]) == []
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT datcollate FROM pg_database WHERE datname = current_database()")
            assert byte_order("c", cursor.fetchone()[0])
