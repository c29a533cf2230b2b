"""The multi-site emulator: many sites on one socket, each with its own credentials, data,
limits, faults and clock of changes; idle sites compressed so a thousand fit in memory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.pims.processes import emulator_process
from tests.records.fleet import running_fleet
from vetsync.pims.emulator import FleetEmulator, lognormal_client_counts
from vetsync.pims.ezyvet import EzyVetAuthError, EzyVetClient, parse_credentials_file


@pytest.fixture
def fleet() -> Iterator[FleetEmulator]:
    with running_fleet(sites=4, clients=12, seed=5) as emulator:
        yield emulator


def _client(fleet: FleetEmulator, url_site: int, creds_site: int) -> EzyVetClient:
    credentials = parse_credentials_file(fleet.site(creds_site).credentials.as_text())
    return EzyVetClient(
        fleet.site_url(url_site),
        credentials,
        rate_per_minute=0,
        endpoint_rate_per_minute=0,
        backoff_base=0.01,
        timezone="America/Chicago",
    )


def _pulled_names(client: EzyVetClient) -> set[tuple[str, str, str]]:
    with client:
        return {
            (c.pims_id, c.first_name, c.last_name) for batch in client.pull() for c in batch.clients
        }


def _site_names(fleet: FleetEmulator, number: int) -> set[tuple[str, str, str]]:
    return {
        (str(c["id"]), str(c["first_name"]), str(c["last_name"]))
        for c in fleet.site(number).records("contact")
        if c["is_customer"] == "1"
    }


def test_each_site_pulls_its_own_clients_through_the_connector(fleet: FleetEmulator) -> None:
    pulled_3 = _pulled_names(_client(fleet, 3, 3))
    pulled_4 = _pulled_names(_client(fleet, 4, 4))

    assert pulled_3 == _site_names(fleet, 3)
    assert pulled_4 == _site_names(fleet, 4)
    assert pulled_3 != pulled_4


def test_one_sites_credentials_never_read_another_sites_data(fleet: FleetEmulator) -> None:
    with pytest.raises(EzyVetAuthError), _client(fleet, 4, 3) as wrong:
        list(wrong.pull())

    creds = fleet.site(3).credentials
    token = requests.post(
        f"{fleet.site_url(3)}/v1/oauth/access_token",
        json={
            "partner_id": creds.partner_id,
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
            "grant_type": "client_credentials",
            "scope": "read-contact",
            "site_uid": creds.site_uid,
        },
        timeout=5,
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    own = requests.get(f"{fleet.site_url(3)}/v1/contact", headers=headers, timeout=5)
    other = requests.get(f"{fleet.site_url(4)}/v1/contact", headers=headers, timeout=5)
    bare = requests.get(f"{fleet.base_url}/v1/contact", headers=headers, timeout=5)

    assert own.status_code == 200
    assert other.status_code == 401
    assert "contact" not in other.text.split('"messages"')[0]
    assert bare.status_code == 404


def test_mutate_and_faults_take_a_site(fleet: FleetEmulator) -> None:
    contact_id = fleet.site(2).customer_ids()[0]
    before_1 = fleet.site(1).record("contact", contact_id)

    changed = requests.post(
        f"{fleet.base_url}/_emulator/mutate",
        json={"site": 2, "resource": "contact", "id": contact_id, "fields": {"last_name": "Zed"}},
        timeout=5,
    )
    faulted = requests.post(
        f"{fleet.base_url}/_emulator/faults",
        json={"site": 2, "kind": "server_error", "status": 503, "for_seconds": 60},
        timeout=5,
    )
    unnamed = requests.post(f"{fleet.base_url}/_emulator/faults", json={"kind": "drop"}, timeout=5)

    assert changed.status_code == 200 and faulted.status_code == 200
    assert fleet.site(2).record("contact", contact_id)["last_name"] == "Zed"
    assert fleet.site(1).record("contact", contact_id) == before_1
    assert unnamed.status_code == 400 and "Name the sites" in unnamed.json()["error"]
    # The fault lasts its time on its own site: every call, not a count of them.
    for _ in range(3):
        assert requests.get(f"{fleet.site_url(2)}/v1/contact", timeout=5).status_code == 503
    assert requests.get(f"{fleet.site_url(1)}/v1/contact", timeout=5).status_code == 401


def test_sites_listing_and_per_site_state(fleet: FleetEmulator) -> None:
    listing = requests.get(f"{fleet.base_url}/_emulator/sites", timeout=5).json()
    state = requests.get(f"{fleet.site_url(2)}/_emulator/state", timeout=5).json()

    assert [s["site"] for s in listing] == [1, 2, 3, 4]
    assert len({s["credentials"]["client_secret"] for s in listing}) == 4
    assert {s["credentials"]["site_uid"] for s in listing} == {
        "site-0001",
        "site-0002",
        "site-0003",
        "site-0004",
    }
    assert state["records"]["contact"] >= 12


def test_idle_sites_are_compressed_and_keep_their_changes() -> None:
    fleet = FleetEmulator(sites=5, clients=20, seed=2, resident_clients=45)
    contact_id = fleet.site(1).customer_ids()[0]
    fleet.site(1).update_record("contact", contact_id, {"last_name": "Kept"})
    for n in (2, 3, 4, 5):
        fleet.site(n).records("contact")

    state = fleet.state()

    assert not fleet.site(1).resident
    assert state["resident_clients"] <= 45
    assert state["frozen_bytes"] > 0
    assert fleet.site(1).record("contact", contact_id)["last_name"] == "Kept"
    assert fleet.site(1).resident


def test_sites_generated_first_hold_the_same_data_within_the_resident_budget() -> None:
    fleet = FleetEmulator(sites=5, clients=20, seed=2, resident_clients=45)
    on_demand = FleetEmulator(sites=5, clients=20, seed=2, resident_clients=45)

    fleet.generate_all()

    state = fleet.state()
    assert state["resident_clients"] <= 45 and state["frozen_bytes"] > 0
    assert all(site.resident or site.frozen_bytes for site in fleet.sites.values())
    for n in (1, 5):
        assert _site_names(fleet, n) == _site_names(on_demand, n)


def test_client_counts_come_from_a_mapping_or_a_seeded_lognormal() -> None:
    pinned = FleetEmulator(sites=3, clients=10, site_clients={2: 40})
    drawn = lognormal_client_counts(1000, seed=1, median=1000, sigma=0.9, cap=10_000)

    assert [pinned.site(n).clients for n in (1, 2, 3)] == [10, 40, 10]
    assert drawn == lognormal_client_counts(1000, seed=1, median=1000, sigma=0.9, cap=10_000)
    assert max(drawn.values()) <= 10_000
    assert 800 <= sorted(drawn.values())[500] <= 1250
    assert 1_200_000 <= sum(drawn.values()) <= 1_800_000


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_each_site_changes_on_its_own_clock() -> None:
    clock = Clock()
    fleet = FleetEmulator(
        sites=2, clients=50, seed=3, change_rate=0.1, change_period=3600, clock=clock
    )
    fleet.site(1).records("contact")
    fleet.site(2).records("contact")

    clock.now += 3600
    fleet.site(1).handle("GET", "/v1/contact", {}, {}, b"")  # a call (refused: no token)

    def changed(n: int) -> int:
        return sum(
            int(str(r["modified_at"])) >= clock.now
            for name in ("contact", "animal", "address", "contactdetail")
            for r in fleet.site(n).records(name)
        )

    assert changed(1) >= 4  # 10 % of 50 clients in an hour (a new client is several records)
    assert changed(2) == 0  # not called yet: its changes wait for it


def test_cli_serves_a_fleet_from_a_counts_file(tmp_path: Path) -> None:
    counts = tmp_path / "counts.json"
    counts.write_text(json.dumps([3, 7]))
    with emulator_process("--sites", "2", "--site-clients-file", str(counts)) as base_url:
        listing: list[dict[str, Any]] = requests.get(
            f"{base_url}/_emulator/sites", timeout=5
        ).json()
        state = requests.get(f"{base_url}/site/2/_emulator/state", timeout=5).json()

    assert [s["clients"] for s in listing] == [3, 7]
    # Seven pet owners, plus the site's six staff and two suppliers.
    assert state["records"]["contact"] == 7 + 8
