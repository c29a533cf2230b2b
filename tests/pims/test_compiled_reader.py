"""The compiled reader of stored batches reads every entry exactly as ``agent`` does: the same
records, and for anything irregular the same quarantine reasons (it hands those to ``agent``)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from records.sync.plan import parse_entries
from tests.pims.test_agent_fast_path import any_entries, tidy_entries
from vetsync.lib import json_input
from vetsync.pims import agent, compiled

# What a PIMS puts in the fields the texts' strategies leave out.
stamps = st.sampled_from(
    ["2026-11-20T10:00:00Z", "2026-11-20T10:00:00", "2026-11-20 10:00:00+01:00", "yesterday", ""]
)
dates = st.sampled_from(["2019-04-02", "20190402", "2019-02-30", "", None])
numbers = st.sampled_from([11.4, 3, 0, -1, 1e300, float("inf"), "7.5", "", True, 100000.0])
units = st.sampled_from(["kg", "lb", "KG", "", None, 0])
flags = st.sampled_from([True, False, None, 0, "yes"])
details = st.fixed_dictionaries(
    {},
    optional={
        "birth_date": dates,
        "deceased_on": dates,
        "deceased": flags,
        "weight": numbers,
        "weight_unit": units,
        "active": flags,
        "modified_at": stamps,
    },
)


@st.composite
def entries(draw: st.DrawFn) -> dict[str, Any]:
    """An entry of any shape, its patients with dates, weights and flags of any kind."""
    entry: dict[str, Any] = dict(draw(tidy_entries | any_entries))
    entry.update(draw(st.fixed_dictionaries({}, optional={"active": flags, "modified_at": stamps})))
    pets: list[dict[str, Any]] = entry.get("patients", [])
    entry["patients"] = [{**pet, **draw(details)} for pet in pets]
    return entry


def careful(text: bytes) -> Any:
    return agent.parse_client_entry(json_input.loads(text))


@settings(max_examples=600, deadline=None)
@given(entry=entries())
@example(
    entry={
        "pims_id": "C-1",
        "first_name": "Dana",
        "patients": [{"pims_id": "P", "name": "Rex"}] * 2,
    }
)
@example(entry={"pims_id": "C-1", "last_name": "Okafor", "email": "Dana@Example.org"})
@example(entry={"pims_id": "C-1", "first_name": "Dana |x", "address": {"line1": "1| Alder St"}})
@example(entry={"pims_id": "C-1", "first_name": "Zoë\u00a0Ann"})
@example(entry={"pims_id": "C-1", "first_name": "Dana", "address": None, "patients": None})
def test_the_compiled_reader_reads_every_entry_as_agent_does(entry: dict[str, Any]) -> None:
    text = json.dumps(entry).encode()

    assert compiled.read_entry(msgspec.Raw(text)) == careful(text)


@pytest.mark.parametrize(
    "text",
    [
        b'{"pims_id": "C-1", "first_name": "Dana", "first_name": "  Sam"}',  # the last one counts
        b'{"pims_id": "C-1", "first_name": "Dana\\u0000"}',
        b'{"pims_id": "C-1", "first_name": "Dana\\ud800"}',
        b'{"pims_id": "C-1", "first_name": "Dana", "patients": [{"pims_id": "P", "name": "Rex",'
        b' "weight": NaN}]}',
        b'{"pims_id": "C-1", "first_name": "Dana", "patients": [{"pims_id": "P", "name": "Rex",'
        b' "weight": 1' + b"0" * 50 + b"}]}",
        b"[1, 2]",
        b"17",
        b'{"pims_id": "C-1", "first_name": "Dana", "address": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ],
)
def test_what_json_allows_and_agent_refuses_is_read_by_agent(text: bytes) -> None:
    assert compiled.read_entry(msgspec.Raw(text)) == careful(text)


def test_a_batch_reads_the_same_either_way() -> None:
    """Repeated clients and patients across entries, a bad entry among good ones."""
    clients = [
        {"pims_id": "C-1", "first_name": "Dana", "patients": [{"pims_id": "P-1", "name": "Rex"}]},
        {"pims_id": "C-2", "last_name": "Okafor", "patients": [{"pims_id": "P-1", "name": "Rex"}]},
        {"pims_id": "C-1", "first_name": "Sam"},
        {"pims_id": "C-3", "first_name": " Sam", "patients": "none"},
        "not an entry",
    ]
    body = json.dumps({"source": "syncvet", "clients": clients, "quarantined": [{"a": 1}]})

    raw_entries, others = compiled.read_batch(body) or ([], {})
    fast = parse_entries(raw_entries, compiled.read_entry, compiled.entry_object)

    careful_others: dict[str, Any] = {}
    assert fast == parse_entries(json_input.member_items(body, "clients", careful_others))
    assert others == careful_others == {"source": "syncvet", "quarantined": [{"a": 1}]}
    assert [client is None for client, _ in fast] == [False, False, True, False, True]
    assert fast[3][0] is not None and fast[3][0].first_name == "Sam"


@pytest.mark.parametrize(
    "body",
    [
        '{"clients": {"pims_id": "C-1"}}',
        '{"clients": [1, 2',
        "[]",
        '{"clients": [], "x": NaN}',
        '{"clients": [' + "[" * 100_000 + "]" * 100_000 + "]}",
    ],
)
def test_a_batch_that_is_not_regular_json_is_left_to_the_careful_reader(body: str) -> None:
    assert compiled.read_batch(body) is None
