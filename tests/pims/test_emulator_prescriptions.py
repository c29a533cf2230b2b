"""``v1/externalprescription``: every POST and PATCH rule, with ezyVet's exact texts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.pims.writeback import PRESCRIBED_AT, item, prescription
from vetsync.pims.emulator import EzyVetEmulator

Api = Callable[..., Any]
DISPENSED_AT = PRESCRIBED_AT + 86_400


def _post(api: Api, payload: dict[str, Any]) -> dict[str, Any]:
    response = api("POST", "externalprescription", json=payload)
    assert response.status_code == 200, response.text
    return dict(response.json()["items"][0]["externalprescription"])


def _patch(api: Api, rx_id: str, payload: dict[str, Any]) -> Any:
    return api("PATCH", f"externalprescription/{rx_id}", json=payload)


def _error(response: Any) -> str:
    assert response.status_code == 400, response.text
    return str(response.json()["messages"][0]["text"])


def _items(record: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {i["external_product_reference"]: i for i in record["external_prescription_item_list"]}


def test_post_starts_items_pending_dated_at_the_prescription(
    api: Api, emulator: EzyVetEmulator
) -> None:
    record = _post(api, prescription(emulator))

    assert record["external_reference"] == "VS-RX-1001"
    assert record["total_price"] == "62.50"
    for line in _items(record).values():
        assert line["status"] == "PENDING"
        assert line["status_date"] == str(PRESCRIBED_AT)
        assert line["date_of_lastdispense"] == ""
        assert all(isinstance(v, str) for v in line.values())


def test_first_post_makes_the_partner_group_and_a_product_per_new_reference(
    api: Api, emulator: EzyVetEmulator
) -> None:
    _post(api, prescription(emulator, "RX-A"))
    again = prescription(emulator, "RX-B")
    again["external_prescription_item_list"] = [item("CARPROFEN-75"), item("GABAPENTIN-100")]
    _post(api, again)

    state = emulator.state()
    (group,) = state["product_groups"]
    assert group["name"] == emulator.credentials.partner_name
    products = {p["external_product_reference"]: p for p in state["products"]}
    assert set(products) == {"CARPROFEN-75", "OMEGA-3", "GABAPENTIN-100"}
    assert all(p["product_group_id"] == group["id"] for p in products.values())
    assert all(p["is_billable"] == "0" and p["is_sellable"] == "0" for p in products.values())


@pytest.mark.parametrize("field", ["status", "status_date"])
def test_post_refuses_status_fields(api: Api, emulator: EzyVetEmulator, field: str) -> None:
    payload = prescription(emulator)
    payload["external_prescription_item_list"][0][field] = (
        "PENDING" if field == "status" else PRESCRIBED_AT
    )

    response = api("POST", "externalprescription", json=payload)

    assert _error(response) == "status or status_date are not allowed on POST, use PATCH instead."
    assert emulator.state()["externalprescriptions"] == []


def test_post_with_a_dispense_starts_current(api: Api, emulator: EzyVetEmulator) -> None:
    payload = prescription(emulator)
    payload["external_prescription_item_list"][0]["date_of_lastdispense"] = DISPENSED_AT

    lines = _items(_post(api, payload))

    assert lines["CARPROFEN-75"]["status"] == "CURRENT"
    assert lines["CARPROFEN-75"]["status_date"] == str(DISPENSED_AT)
    assert lines["OMEGA-3"]["status"] == "PENDING"


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({"animal_id": 999999}, "animal_id 999999 does not exist."),
        (
            {"date_of_prescription": "today"},
            "date_of_prescription is required and must be numeric.",
        ),
        ({"external_reference": ""}, "external_reference is required."),
        ({"prescribing_vet_user_id": None}, "prescribing_vet_user_id is required."),
        ({"external_prescription_item_list": []}, "external_prescription_item_list is required"),
    ],
)
def test_post_validates_the_root(
    api: Api, emulator: EzyVetEmulator, change: dict[str, Any], text: str
) -> None:
    payload = {k: v for k, v in {**prescription(emulator), **change}.items() if v is not None}

    assert _error(api("POST", "externalprescription", json=payload)).startswith(text)


def test_post_needs_a_real_vet_and_a_matching_owner(api: Api, emulator: EzyVetEmulator) -> None:
    contacts = {c["id"]: c for c in emulator.records("contact")}
    not_vet = next(
        u for u in emulator.records("user") if contacts[u["contact_id"]]["is_vet"] == "0"
    )
    other_owner = next(
        c for c in emulator.customer_ids() if c != str(prescription(emulator)["contact_id"])
    )

    wrong_vet = api(
        "POST",
        "externalprescription",
        json=prescription(emulator, prescribing_vet_user_id=not_vet["id"]),
    )
    wrong_owner = api(
        "POST", "externalprescription", json=prescription(emulator, contact_id=other_owner)
    )

    assert "is not a vet user" in _error(wrong_vet)
    assert "does not belong to contact_id" in _error(wrong_owner)


def test_patch_dispense_makes_current_and_root_date_fills_items(
    api: Api, emulator: EzyVetEmulator
) -> None:
    rx = _post(api, prescription(emulator))

    first = _patch(
        api,
        rx["id"],
        {
            "external_prescription_item_list": [
                {
                    "external_product_reference": "CARPROFEN-75",
                    "date_of_lastdispense": DISPENSED_AT,
                    "qty": 30,
                    "remaining": 30,
                }
            ]
        },
    )
    assert first.status_code == 200, first.text
    lines = _items(first.json()["items"][0]["externalprescription"])
    assert lines["CARPROFEN-75"]["status"] == "CURRENT"
    assert lines["CARPROFEN-75"]["status_date"] == str(DISPENSED_AT)
    assert lines["CARPROFEN-75"]["remaining"] == "30"
    assert lines["OMEGA-3"]["status"] == "PENDING"

    later = DISPENSED_AT + 30 * 86_400
    second = _patch(
        api,
        rx["id"],
        {
            "date_of_lastdispense": later,
            "external_prescription_item_list": [
                {"external_product_reference": "CARPROFEN-75", "remaining": 0},
                {"external_product_reference": "OMEGA-3", "date_of_lastdispense": later + 5},
            ],
        },
    )
    lines = _items(second.json()["items"][0]["externalprescription"])
    assert lines["CARPROFEN-75"]["date_of_lastdispense"] == str(later)
    assert lines["CARPROFEN-75"]["status_date"] == str(DISPENSED_AT)  # current since then
    assert lines["OMEGA-3"]["date_of_lastdispense"] == str(later + 5)
    assert lines["OMEGA-3"]["status"] == "CURRENT"


def test_patch_with_only_a_root_dispense_dispenses_every_open_item(
    api: Api, emulator: EzyVetEmulator
) -> None:
    rx = _post(api, prescription(emulator))

    response = _patch(api, rx["id"], {"date_of_lastdispense": DISPENSED_AT})

    lines = _items(response.json()["items"][0]["externalprescription"])
    assert {line["status"] for line in lines.values()} == {"CURRENT"}


def test_patch_without_status_needs_a_dispense(api: Api, emulator: EzyVetEmulator) -> None:
    rx = _post(api, prescription(emulator))

    response = _patch(
        api,
        rx["id"],
        {"external_prescription_item_list": [{"external_product_reference": "OMEGA-3", "qty": 2}]},
    )

    assert _error(response) == (
        "date_of_lastdispense is required on at least one item when no status is given."
    )


@pytest.mark.parametrize("status", ["PENDING", "CURRENT", "DONE"])
def test_patch_cannot_set_pending_or_current(
    api: Api, emulator: EzyVetEmulator, status: str
) -> None:
    rx = _post(api, prescription(emulator))

    response = _patch(
        api,
        rx["id"],
        {
            "external_prescription_item_list": [
                {
                    "external_product_reference": "OMEGA-3",
                    "status": status,
                    "status_date": DISPENSED_AT,
                }
            ]
        },
    )

    assert _error(response).startswith(
        "status must be one of DECLINED_DR, DECLINED_CLIENT, CANCELLED_DR, CANCELLED_CLIENT"
    )


@pytest.mark.parametrize("status_date", [None, "", "yesterday"])
def test_end_status_needs_a_numeric_status_date(
    api: Api, emulator: EzyVetEmulator, status_date: Any
) -> None:
    rx = _post(api, prescription(emulator))
    line: dict[str, Any] = {"external_product_reference": "OMEGA-3", "status": "DECLINED_CLIENT"}
    if status_date is not None:
        line["status_date"] = status_date

    response = _patch(api, rx["id"], {"external_prescription_item_list": [line]})

    assert _error(response) == (
        "status_date is required and must be numeric when status is Declined or Cancelled."
    )


def _end(api: Api, rx_id: str, reference: str, status: str) -> Any:
    return _patch(
        api,
        rx_id,
        {
            "external_prescription_item_list": [
                {
                    "external_product_reference": reference,
                    "status": status,
                    "status_date": DISPENSED_AT + 7,
                }
            ]
        },
    )


@pytest.mark.parametrize("status", ["DECLINED_DR", "DECLINED_CLIENT"])
def test_declined_only_from_pending(api: Api, emulator: EzyVetEmulator, status: str) -> None:
    rx = _post(api, prescription(emulator))
    _patch(
        api,
        rx["id"],
        {
            "external_prescription_item_list": [
                {"external_product_reference": "CARPROFEN-75", "date_of_lastdispense": DISPENSED_AT}
            ]
        },
    )

    refused = _end(api, rx["id"], "CARPROFEN-75", status)
    accepted = _end(api, rx["id"], "OMEGA-3", status)

    assert _error(refused) == "Only Pending items can be changed to Declined."
    assert accepted.status_code == 200
    line = _items(accepted.json()["items"][0]["externalprescription"])["OMEGA-3"]
    assert (line["status"], line["status_date"]) == (status, str(DISPENSED_AT + 7))


@pytest.mark.parametrize("status", ["CANCELLED_DR", "CANCELLED_CLIENT"])
def test_cancelled_only_from_current(api: Api, emulator: EzyVetEmulator, status: str) -> None:
    rx = _post(api, prescription(emulator))
    _patch(
        api,
        rx["id"],
        {
            "external_prescription_item_list": [
                {"external_product_reference": "CARPROFEN-75", "date_of_lastdispense": DISPENSED_AT}
            ]
        },
    )

    refused = _end(api, rx["id"], "OMEGA-3", status)
    accepted = _end(api, rx["id"], "CARPROFEN-75", status)

    assert _error(refused) == "Only Dispensed items can be changed to Cancelled."
    assert accepted.status_code == 200
    assert (
        _items(accepted.json()["items"][0]["externalprescription"])["CARPROFEN-75"]["status"]
        == status
    )


def test_ended_items_cannot_be_dispensed_or_ended_again(api: Api, emulator: EzyVetEmulator) -> None:
    rx = _post(api, prescription(emulator))
    assert _end(api, rx["id"], "OMEGA-3", "DECLINED_DR").status_code == 200

    dispense = _patch(
        api,
        rx["id"],
        {
            "external_prescription_item_list": [
                {"external_product_reference": "OMEGA-3", "date_of_lastdispense": DISPENSED_AT}
            ]
        },
    )

    assert _error(dispense) == "Declined or Cancelled items cannot be dispensed."
    assert _error(_end(api, rx["id"], "OMEGA-3", "DECLINED_CLIENT")) == (
        "Only Pending items can be changed to Declined."
    )


def test_patch_ignores_date_of_prescription_and_is_all_or_nothing(
    api: Api, emulator: EzyVetEmulator
) -> None:
    rx = _post(api, prescription(emulator))

    response = _patch(
        api,
        rx["id"],
        {
            "date_of_prescription": PRESCRIBED_AT + 999,
            "external_prescription_item_list": [
                {
                    "external_product_reference": "CARPROFEN-75",
                    "date_of_lastdispense": DISPENSED_AT,
                },
                {
                    "external_product_reference": "OMEGA-3",
                    "status": "CANCELLED_DR",
                    "status_date": DISPENSED_AT,
                },
            ],
        },
    )

    assert _error(response) == "Only Dispensed items can be changed to Cancelled."
    (stored,) = emulator.state()["externalprescriptions"]
    assert stored["date_of_prescription"] == str(PRESCRIBED_AT)
    assert {i["status"] for i in stored["external_prescription_item_list"]} == {"PENDING"}


def test_patch_of_unknown_item_or_prescription(api: Api, emulator: EzyVetEmulator) -> None:
    rx = _post(api, prescription(emulator))

    unknown_item = _patch(
        api,
        rx["id"],
        {
            "external_prescription_item_list": [
                {"external_product_reference": "NOPE", "date_of_lastdispense": DISPENSED_AT}
            ]
        },
    )
    unknown_rx = _patch(api, "99999", {"date_of_lastdispense": DISPENSED_AT})

    assert "NOPE" in _error(unknown_item)
    assert unknown_rx.status_code == 404


def test_lookup_by_external_reference_and_duplicates_are_stored(
    api: Api, emulator: EzyVetEmulator
) -> None:
    first = _post(api, prescription(emulator, "RX-DUP"))
    second = _post(api, prescription(emulator, "RX-DUP"))  # ezyVet has no idempotency key
    _post(api, prescription(emulator, "RX-OTHER"))

    found = api("GET", "externalprescription", params={"external_reference": "RX-DUP"}).json()

    assert [i["externalprescription"]["id"] for i in found["items"]] == [first["id"], second["id"]]


def test_writes_need_the_write_scope(
    emulator: EzyVetEmulator, token_for: Callable[..., str]
) -> None:
    token = token_for("read-contact read-animal")
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{emulator.base_url}/v1/externalprescription"

    assert (
        requests.post(url, json=prescription(emulator), headers=headers, timeout=5).status_code
        == 403
    )
    assert requests.get(url, headers=headers, timeout=5).status_code == 403
