"""Reading a batch's entries one at a time (``json_input.member_items``) gives what reading the
whole text gives, and refuses what it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vetsync.lib import json_input

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**50), max_value=10**50)
    | st.floats()
    | st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
envelopes = st.dictionaries(st.text(max_size=8), values, max_size=4).flatmap(
    lambda others: st.lists(values, max_size=6).map(lambda items: {**others, "clients": items})
)


@settings(max_examples=200, deadline=None)
@given(envelope=envelopes, indent=st.sampled_from([None, 1, "\t"]))
def test_the_items_are_those_of_the_whole_text(envelope: dict[str, Any], indent: Any) -> None:
    text = json.dumps(envelope, indent=indent)
    others: dict[str, Any] = {}

    items = list(json_input.member_items(text, "clients", others))

    whole = json_input.loads(text)
    assert json.dumps(items) == json.dumps(whole["clients"])  # NaN-safe comparison
    assert json.dumps(others) == json.dumps({k: v for k, v in whole.items() if k != "clients"})


@pytest.mark.parametrize(
    "text",
    [
        '{"clients": [1, 2,]}',
        '{"clients": [1 2]}',
        '{"clients": [1], }',
        '{"clients": [1]} extra',
        '{"clients": [1]',
        '{"clients": [{"a": }]}',
        "",
    ],
)
def test_what_json_refuses_is_refused(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    with pytest.raises(json_input.JsonInputError):
        list(json_input.member_items(text, "clients"))


def test_a_repeated_member_is_told_apart() -> None:
    # ``loads`` keeps the last one: the caller reads the whole text again.
    text = '{"clients": [1], "batch_id": "x", "clients": [2]}'
    with pytest.raises(json_input.RepeatedKey):
        list(json_input.member_items(text, "clients"))
    assert json_input.loads(text)["clients"] == [2]
