"""The emulator's own doors: the CLI that run.sh starts, and the ``/_emulator/*`` controls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from tests.pims.processes import emulator_process
from vetsync.pims.emulator import EzyVetEmulator


def test_cli_prints_its_address_and_serves() -> None:
    with emulator_process("--clients", "5", "--seed", "1") as base_url:
        state = requests.get(f"{base_url}/_emulator/state", timeout=5).json()
    assert state["records"]["contact"] >= 5


def _control(emulator: EzyVetEmulator, action: str, body: Any = None) -> Any:
    url = f"{emulator.base_url}/_emulator/{action}"
    if body is None and action == "state":
        return requests.get(url, timeout=5)
    return requests.post(url, json=body or {}, timeout=5)


def test_mutate_over_http_bumps_modified_at(emulator: EzyVetEmulator) -> None:
    contact_id = emulator.customer_ids()[0]
    before = emulator.record("contact", contact_id)

    specific = _control(
        emulator,
        "mutate",
        {"resource": "contact", "id": contact_id, "fields": {"last_name": "Renamed"}},
    )
    random_changes = _control(emulator, "mutate", {"count": 5, "add_clients": 2})

    assert specific.status_code == 200
    after = emulator.record("contact", contact_id)
    assert after["last_name"] == "Renamed"
    assert int(after["modified_at"]) > int(before["modified_at"])
    body = random_changes.json()
    assert len(body["changed"]) == 5
    assert len(body["created"]) == 2
    bad = _control(emulator, "mutate", {"resource": "contact", "id": "1", "fields": {"x": "y"}})
    assert bad.status_code == 400


def test_faults_state_expire_config_and_reset_over_http(
    emulator: EzyVetEmulator, api: Callable[..., Any]
) -> None:
    assert (
        _control(
            emulator,
            "faults",
            {"kind": "server_error", "count": 1, "endpoint": "sex", "status": 503},
        ).status_code
        == 200
    )
    assert api("GET", "sex").status_code == 503
    assert api("GET", "sex").status_code == 200

    assert _control(emulator, "expire-tokens").json()["expired"] == 1
    assert api("GET", "sex").status_code == 401

    config = _control(emulator, "config", {"token_lifetime": 60}).json()
    assert config["token_lifetime"] == 60

    state = _control(emulator, "state").json()
    assert state["request_counts"]["GET sex"] == 3
    assert state["tokens_issued"] == 1

    assert _control(emulator, "reset").status_code == 200
    assert emulator.state()["requests_total"] == 0
    assert _control(emulator, "faults", {"kind": "meteor"}).status_code == 400
