"""The pull: ezyVet records in, ``PimsClient``/``PimsPatient`` out, full and delta."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tests.pims.conftest import FakeClock
from vetsync.pims.emulator import EzyVetEmulator
from vetsync.pims.ezyvet import EzyVetClient, parse_credentials_file
from vetsync.pims.records import PimsBatch, PimsClient, Source, WeightUnit

CHICAGO = ZoneInfo("America/Chicago")


def _midnight(day: dt.date) -> str:
    return str(int(dt.datetime.combine(day, dt.time(), tzinfo=CHICAGO).timestamp()))


def _clients(batches: list[PimsBatch]) -> dict[str, PimsClient]:
    return {client.pims_id: client for batch in batches for client in batch.clients}


def _id_of(emulator: EzyVetEmulator, resource: str, name: str) -> str:
    return next(r["id"] for r in emulator.records(resource) if r["name"] == name)


def _customer_with_email_and_mobile(emulator: EzyVetEmulator) -> tuple[str, dict[str, str]]:
    details = emulator.records("contactdetail")
    for contact_id in emulator.customer_ids():
        mine = {d["name"]: d["id"] for d in details if d["contact_id"] == contact_id}
        active = [d for d in details if d["contact_id"] == contact_id and d["active"] == "1"]
        if {"Email", "Mobile"} <= {d["name"] for d in active} and len(active) == len(mine):
            return contact_id, mine
    raise AssertionError("the seeded site has no customer with an email and a mobile")


def test_full_pull_normalises_a_client_and_pets(
    emulator: EzyVetEmulator, ezyvet: EzyVetClient
) -> None:
    contact_id, details = _customer_with_email_and_mobile(emulator)
    contact = emulator.record("contact", contact_id)
    emulator.update_record(
        "contact", contact_id, {"first_name": "Dana", "last_name": "Whitfield", "active": "1"}
    )
    emulator.update_record(
        "address",
        contact["address_physical"],
        {
            "street_1": "12 Alder St",
            "street_2": "",
            "city": "Portland",
            "state": "OR",
            "post_code": "97205",
        },
    )
    emulator.update_record("contactdetail", details["Email"], {"value": "dana@example.org"})
    emulator.update_record("contactdetail", details["Mobile"], {"value": "+1 503 555 0142"})
    biscuit = emulator.add_animal(
        contact_id,
        name="Biscuit",
        species_id=_id_of(emulator, "species", "Canine"),
        breed_id=_id_of(emulator, "breed", "Beagle"),
        sex_id=_id_of(emulator, "sex", "Female Spayed"),
        date_of_birth=_midnight(dt.date(2019, 4, 2)),
        weight="11.40",
        weight_unit="kg",
        is_dead="0",
        date_of_death="",
        microchip_number="985112345678901",
    )
    rex = emulator.add_animal(
        contact_id,
        name="Rex",
        weight="25.5",
        weight_unit="lb",
        date_of_birth="2012-06-30",
        is_dead="1",
        date_of_death=_midnight(dt.date(2026, 1, 5)),
    )

    pull = ezyvet.pull()
    batches = list(pull)

    client = _clients(batches)[contact_id]
    assert (client.first_name, client.last_name) == ("Dana", "Whitfield")
    assert client.email == "dana@example.org"
    assert client.phone == "+1 503 555 0142"
    assert (client.address.line1, client.address.city, client.address.state) == (
        "12 Alder St",
        "Portland",
        "OR",
    )
    assert client.address.postcode == "97205"
    assert client.active is True
    patients = {p.pims_id: p for p in client.patients}
    dog = patients[biscuit["id"]]
    assert (dog.name, dog.species, dog.breed, dog.sex) == (
        "Biscuit",
        "Canine",
        "Beagle",
        "Female Spayed",
    )
    assert dog.birth_date == dt.date(2019, 4, 2)
    assert dog.weight == Decimal("11.40")
    assert dog.weight_unit is WeightUnit.KG
    assert dog.deceased is False
    assert dog.microchip == "985112345678901"
    old = patients[rex["id"]]
    assert old.weight == Decimal("25.5")
    assert old.weight_unit is WeightUnit.LB
    assert old.birth_date == dt.date(2012, 6, 30)
    assert old.deceased is True
    assert old.deceased_on == dt.date(2026, 1, 5)
    assert all(batch.source is Source.EZYVET and batch.full for batch in batches)
    assert pull.complete and pull.watermark is not None


def test_full_pull_takes_customers_only_with_all_their_pets(
    emulator: EzyVetEmulator, ezyvet: EzyVetClient
) -> None:
    clients = _clients(list(ezyvet.pull()))

    assert set(clients) == set(emulator.customer_ids())
    pets = sum(len(c.patients) for c in clients.values())
    assert pets == len(emulator.records("animal"))


def test_business_name_inactive_email_and_postal_fallback(
    emulator: EzyVetEmulator, ezyvet: EzyVetClient
) -> None:
    contact_id, details = _customer_with_email_and_mobile(emulator)
    contact = emulator.record("contact", contact_id)
    emulator.update_record(
        "contact",
        contact_id,
        {
            "first_name": "",
            "last_name": "",
            "business_name": "Greenfield Kennels",
            "address_physical": "0",
        },
    )
    emulator.update_record("address", contact["address_postal"], {"street_1": "PO Box 77"})
    emulator.update_record("contactdetail", details["Email"], {"active": "0"})

    client = _clients(list(ezyvet.pull()))[contact_id]

    assert (client.first_name, client.last_name) == ("", "Greenfield Kennels")
    assert client.email == ""
    assert client.address.line1 == "PO Box 77"


def test_bad_records_are_quarantined_and_the_pull_goes_on(
    emulator: EzyVetEmulator, ezyvet: EzyVetClient
) -> None:
    nameless, weighty, owner = emulator.customer_ids()[:3]
    emulator.update_record(
        "contact", nameless, {"first_name": "", "last_name": "", "business_name": ""}
    )
    heavy = emulator.add_animal(owner, weight="heavy")
    stones = emulator.add_animal(weighty, weight="3", weight_unit="stone")

    batches = list(ezyvet.pull())

    held = {(q.kind, q.pims_id): q for batch in batches for q in batch.quarantined}
    assert "no first name" in held[("client", nameless)].reason
    assert "heavy" in held[("patient", heavy["id"])].reason
    assert held[("patient", heavy["id"])].client_pims_id == owner
    assert "stone" in held[("patient", stones["id"])].reason
    clients = _clients(batches)
    assert nameless not in clients
    assert heavy["id"] not in {p.pims_id for p in clients[owner].patients}
    assert len(clients) == len(emulator.customer_ids()) - 1


def test_delta_finds_each_kind_of_change_and_surfaces_the_owner(
    emulator: EzyVetEmulator, ezyvet: EzyVetClient
) -> None:
    first = ezyvet.pull()
    list(first)
    renamed, weighed, moved, emailed = emulator.customer_ids()[1:5]
    emulator.update_record("contact", renamed, {"last_name": "Okafor-Smith"})
    pet = next(a for a in emulator.records("animal") if a["contact_id"] == weighed)
    emulator.update_record("animal", pet["id"], {"weight": "9.99"})
    emulator.update_record(
        "address", emulator.record("contact", moved)["address_physical"], {"street_1": "1 New Rd"}
    )
    detail = next(d for d in emulator.records("contactdetail") if d["contact_id"] == emailed)
    emulator.update_record("contactdetail", detail["id"], {"value": "changed@example.org"})
    (new,) = emulator.add_clients(1)

    delta = ezyvet.pull(first.watermark)
    batches = list(delta)

    clients = _clients(batches)
    assert set(clients) == {renamed, weighed, moved, emailed, new}
    assert clients[renamed].last_name == "Okafor-Smith"
    assert {p.pims_id: p.weight for p in clients[weighed].patients}[pet["id"]] == Decimal("9.99")
    # A client comes with all its pets, not only the one that changed.
    pets_of_weighed = [a for a in emulator.records("animal") if a["contact_id"] == weighed]
    assert len(clients[weighed].patients) == len(pets_of_weighed)
    assert clients[moved].address.line1 == "1 New Rd"
    assert changed_value(clients[emailed], detail["name"]) == "changed@example.org"
    assert not any(batch.full for batch in batches)
    assert delta.watermark is not None and delta.watermark >= first.watermark  # type: ignore[operator]


def changed_value(client: PimsClient, kind: str) -> str:
    return client.email if kind == "Email" else client.phone


def test_delta_without_changes_yields_nothing(ezyvet: EzyVetClient) -> None:
    first = ezyvet.pull()
    list(first)

    delta = ezyvet.pull(first.watermark)

    assert list(delta) == []
    assert delta.complete
    assert delta.calls == 5  # detail types, then contacts, animals, details, addresses changed


def _delta_calls(customers: int) -> int:
    site = EzyVetEmulator(clients=customers, seed=5, rate_per_minute=0, endpoint_rate_per_minute=0)
    site.start()
    client = EzyVetClient(
        site.base_url,
        parse_credentials_file(site.credentials.as_text()),
        rate_per_minute=0,
        endpoint_rate_per_minute=0,
    )
    try:
        first = client.pull()
        list(first)
        ids = site.customer_ids()
        site.update_record("contact", ids[0], {"last_name": "Changed"})
        animal = next(a for a in site.records("animal") if a["contact_id"] == ids[1])
        site.update_record("animal", animal["id"], {"weight": "4.2"})
        site.update_record(
            "address", site.record("contact", ids[2])["address_physical"], {"city": "Salem"}
        )
        delta = client.pull(first.watermark)
        assert len(_clients(list(delta))) == 3
        return delta.calls
    finally:
        client.close()
        site.stop()


def test_delta_calls_follow_the_changes_not_the_site_size() -> None:
    small, large = _delta_calls(50), _delta_calls(900)

    assert small == large
    assert large <= 16


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_record_edited_mid_pull_is_found_by_the_next_delta() -> None:
    # given a site whose clock we move, with clients over three pages
    clock = ManualClock()
    site = EzyVetEmulator(
        clients=450, seed=9, rate_per_minute=0, endpoint_rate_per_minute=0, clock=clock
    )
    site.start()
    client = EzyVetClient(
        site.base_url,
        parse_credentials_file(site.credentials.as_text()),
        rate_per_minute=0,
        endpoint_rate_per_minute=0,
    )
    try:
        pull = client.pull()
        pages = iter(pull)
        first = next(pages)
        # when a client already read is edited, and later one not yet read is edited after it
        clock.now += 10
        edited = first.clients[0].pims_id
        site.update_record("contact", edited, {"last_name": "Edited-Mid-Pull"})
        clock.now += 5
        later = site.customer_ids()[-1]
        site.update_record("contact", later, {"last_name": "Edited-Later"})
        rest = list(pages)
        clock.now += 30
        # then this pull saw the old name, the later edit, and the next delta finds the first
        assert first.clients[0].last_name != "Edited-Mid-Pull"
        assert _clients(rest)[later].last_name == "Edited-Later"
        assert pull.max_modified_at == dt.datetime.fromtimestamp(clock.now - 30, dt.UTC)
        delta = _clients(list(client.pull(pull.watermark, overlap=dt.timedelta(0))))
        assert delta[edited].last_name == "Edited-Mid-Pull"
    finally:
        client.close()
        site.stop()


def test_token_expiring_mid_pull_is_refreshed_once(
    emulator: EzyVetEmulator, ezyvet: EzyVetClient
) -> None:
    emulator.add_clients(400)  # three pages of clients
    pull = ezyvet.pull()
    pages = iter(pull)
    got = [next(pages)]

    emulator.expire_tokens()
    got += list(pages)

    assert pull.complete
    assert len(_clients(got)) == len(emulator.customer_ids())
    state = emulator.state()
    assert state["tokens_issued"] == 2
    assert state["status_counts"]["401"] == 1


def test_pull_rides_out_429s_and_5xx(
    emulator: EzyVetEmulator, make_client: Callable[..., EzyVetClient]
) -> None:
    clean = _clients(list(make_client().pull()))
    clock = FakeClock()
    ezyvet = make_client(clock=clock, sleep=clock.sleep)
    emulator.inject_fault("rate_limit", 2, endpoint="animal", retry_after=4)
    emulator.inject_fault("server_error", 2, endpoint="contactdetail", status=503)
    emulator.inject_fault("drop", 1, endpoint="address")

    pulled = _clients(list(ezyvet.pull()))

    assert pulled == clean
    assert clock.sleeps.count(4) == 2
    assert emulator.state()["status_counts"]["503"] == 2


@pytest.mark.parametrize("zone", ["America/Chicago", "Pacific/Auckland"])
def test_dates_read_in_the_clinics_time_zone(
    emulator: EzyVetEmulator, make_client: Callable[..., EzyVetClient], zone: str
) -> None:
    owner = emulator.customer_ids()[0]
    local = ZoneInfo(zone)
    born = str(int(dt.datetime(2020, 2, 29, tzinfo=local).timestamp()))
    pet = emulator.add_animal(owner, date_of_birth=born)

    client = _clients(list(make_client(timezone=zone).pull()))[owner]

    assert {p.pims_id: p.birth_date for p in client.patients}[pet["id"]] == dt.date(2020, 2, 29)
