"""Reading a batch entry: the fast path for tidy text reads every entry exactly as the field by
field checks do (the same records, the same reasons for what is quarantined)."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from vetsync.pims import agent

# Tidy text (some of it too long for one field or another: 30, 40, 50, 64, 100 characters
# are limits), and text that is not: stray spaces, tabs, NUL, \x1f, lone surrogates, no text.
tidy = st.sampled_from(["", "Dana", "O'Brien", "Zoë", "12 Alder St", "us"]) | st.builds(
    lambda n: "x" * n, st.sampled_from([2, 3, 20, 21, 30, 31, 40, 41, 50, 51, 64, 65, 100, 101])
)
untidy = (
    st.text(alphabet=st.sampled_from(" a\tb\x00\x1f\ud800Zé"), max_size=8)
    | st.none()
    | st.integers(min_value=-5, max_value=5)
    | st.booleans()
)
texts = tidy | untidy
addresses = (
    st.fixed_dictionaries(
        {},
        optional=dict.fromkeys(("line1", "line2", "city", "state", "postcode", "country"), texts),
    )
    | st.none()
    | st.integers()
)
patients = st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys(("pims_id", "name", "species", "breed", "sex", "microchip"), texts),
        "birth_date": st.sampled_from(["2019-04-02", "02/04/2019", None]),
        "weight": st.sampled_from([11.4, -1, None, "heavy"]),
    },
)
tidy_patients = st.fixed_dictionaries(
    dict.fromkeys(("pims_id", "name", "species", "breed", "sex", "microchip"), tidy)
)
# Entries whose every text is tidy (the fast path's), and entries of anything.
tidy_entries = st.fixed_dictionaries(
    {
        **dict.fromkeys(("pims_id", "first_name", "last_name", "email", "phone"), tidy),
        "address": st.fixed_dictionaries(
            dict.fromkeys(("line1", "line2", "city", "state", "postcode", "country"), tidy)
        ),
        "patients": st.lists(tidy_patients, max_size=2),
    }
)
any_entries = st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys(("pims_id", "first_name", "last_name", "email", "phone"), texts),
        "address": addresses,
        "patients": st.lists(patients, max_size=3),
    },
)


@settings(max_examples=500, deadline=None)
@given(raw=tidy_entries | any_entries)
@example(raw={"pims_id": "\x1f"})  # the separator of the one-match check, as a whole value
def test_the_fast_path_reads_as_the_field_by_field_checks(raw: dict[str, Any]) -> None:
    fast = agent.parse_client_entry(raw)
    tidy, agent._tidy_texts = agent._tidy_texts, lambda raw, keys: None
    try:
        slow = agent.parse_client_entry(raw)
    finally:
        agent._tidy_texts = tidy

    assert fast == slow
