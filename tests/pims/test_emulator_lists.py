"""v1 lists: envelope, strings everywhere, paging and filters (raw HTTP, no connector)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vetsync.pims.emulator import EzyVetEmulator
from vetsync.pims.emulator.data import RESOURCES
from vetsync.pims.ezyvet import EzyVetClient, parse_credentials_file

Api = Callable[..., Any]


def _ids(response: Any, resource: str) -> list[str]:
    return [item[resource]["id"] for item in response.json()["items"]]


def test_envelope_and_every_scalar_is_a_string(api: Api) -> None:
    for resource in RESOURCES:
        response = api("GET", resource, params={"limit": 200})
        assert response.status_code == 200, resource
        body = response.json()
        assert set(body) == {"meta", "items", "messages"}
        assert set(body["meta"]) == {
            "timestamp",
            "items_page",
            "items_page_total",
            "items_page_size",
            "items_total",
            "transaction_id",
        }
        assert body["messages"] == []
        assert body["items"], resource
        for item in body["items"]:
            (record,) = item.values()
            assert set(item) == {resource}
            assert {"id", "active", "created_at", "modified_at"} <= set(record)
            for key, value in record.items():
                if isinstance(value, list):
                    assert all(isinstance(v, str) for v in value), (resource, key)
                else:
                    assert isinstance(value, str), (resource, key, value)


def test_default_limit_is_10_and_over_200_is_refused(api: Api) -> None:
    default = api("GET", "contact").json()
    assert len(default["items"]) == 10
    assert default["meta"]["items_page_size"] == "10"

    assert api("GET", "contact", params={"limit": 200}).status_code == 200
    refused = api("GET", "contact", params={"limit": 201})
    assert refused.status_code == 400
    assert refused.json()["messages"][0]["fields"] == ["limit"]


@pytest.mark.parametrize("customers", [0, 1, 200, 201])
def test_paging_edges(customers: int) -> None:
    site = EzyVetEmulator(clients=customers, seed=3, rate_per_minute=0, endpoint_rate_per_minute=0)
    site.start()
    client = EzyVetClient(
        site.base_url,
        parse_credentials_file(site.credentials.as_text()),
        rate_per_minute=0,
        endpoint_rate_per_minute=0,
    )
    try:
        records = list(client.iter_records("contact", {"is_customer": "1"}))
        ids = [r["id"] for r in records]
        assert len(ids) == customers
        assert ids == sorted(ids, key=int)  # stable order by id, no record twice
        assert len(set(ids)) == customers
        assert client.calls_by_endpoint["contact"] == max(1, math.ceil(customers / 200))

        token = client.access_token()
        last = client.session.get(
            f"{site.base_url}/v1/contact",
            params={"is_customer": "1", "limit": 200, "page": 2},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        ).json()
        assert last["meta"]["items_total"] == str(customers)
        assert last["meta"]["items_page_total"] == str(math.ceil(customers / 200))
        assert len(last["items"]) == max(0, customers - 200)
    finally:
        client.close()
        site.stop()


def _walk(api: Api, resource: str, **params: Any) -> Iterator[dict[str, Any]]:
    page = 1
    while True:
        body = api("GET", resource, params={**params, "limit": 200, "page": page}).json()
        for item in body["items"]:
            yield item[resource]
        if page >= int(body["meta"]["items_page_total"]):
            return
        page += 1


def test_equality_filter(api: Api, emulator: EzyVetEmulator) -> None:
    expected = [a["id"] for a in emulator.records("animal") if a["species_id"] == "2"]

    got = [a["id"] for a in _walk(api, "animal", species_id="2")]

    assert got == expected
    assert expected


@pytest.mark.parametrize(
    ("op", "check"),
    [
        ("gt", lambda v, x: v > x),
        ("gte", lambda v, x: v >= x),
        ("lt", lambda v, x: v < x),
        ("lte", lambda v, x: v <= x),
        ("eq", lambda v, x: v == x),
        ("neq", lambda v, x: v != x),
    ],
)
def test_comparators_on_modified_at(
    api: Api, emulator: EzyVetEmulator, op: str, check: Callable[[int, int], bool]
) -> None:
    animals = emulator.records("animal")
    pivot = int(sorted(a["modified_at"] for a in animals)[len(animals) // 2])
    expected = [a["id"] for a in animals if check(int(a["modified_at"]), pivot)]

    got = [a["id"] for a in _walk(api, "animal", modified_at=json.dumps({op: pivot}))]

    assert got == expected


def test_range_and_in_and_like(api: Api, emulator: EzyVetEmulator) -> None:
    contacts = emulator.records("contact")
    wanted = [c["id"] for c in contacts[3:9]]
    assert [c["id"] for c in _walk(api, "contact", id=json.dumps({"in": wanted}))] == wanted
    # ids as numbers work as well as strings
    numbers = [int(i) for i in wanted]
    assert [c["id"] for c in _walk(api, "contact", id=json.dumps({"in": numbers}))] == wanted

    ranged = [c["id"] for c in _walk(api, "contact", id=json.dumps({"gte": 5, "lte": 8}))]
    assert ranged == ["5", "6", "7", "8"]

    name = contacts[10]["last_name"]
    like = [c["id"] for c in _walk(api, "contact", last_name=json.dumps({"like": name[:2] + "%"}))]
    assert like == [c["id"] for c in contacts if c["last_name"].startswith(name[:2])]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"modified_at": "{not json"}, "modified_at"),
        ({"modified_at": json.dumps({"after": 1})}, "modified_at"),
        ({"id": json.dumps({"in": 5})}, "id"),
        ({"favourite_colour": "blue"}, "favourite_colour"),
        ({"page": "0"}, "page"),
    ],
)
def test_malformed_filters_are_400(api: Api, params: dict[str, str], field: str) -> None:
    response = api("GET", "contact", params=params)

    assert response.status_code == 400
    assert response.json()["messages"][0]["fields"] == [field]


def test_single_record_by_id(api: Api) -> None:
    assert _ids(api("GET", "contact/3"), "contact") == ["3"]
    assert api("GET", "contact/999999").status_code == 404
