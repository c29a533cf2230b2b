"""The two rule tables of prescriptions, row by row: ezyVet's item status transitions and
DESIGN.md's WriteBack eligibility table. End-to-end versions of each row (what reaches the
emulated ezyVet or the agent feed) are in test_writeback_ezyvet.py and test_agent_feed.py."""

from __future__ import annotations

import pytest

from prescriptions.models import Channel, ItemStatus
from prescriptions.rules import (
    TransitionError,
    check_dispense,
    check_end,
    end_status_for,
    writeback_eligibility,
)
from tests.conftest import World

ENDED = [
    ItemStatus.DECLINED_DR,
    ItemStatus.DECLINED_CLIENT,
    ItemStatus.CANCELLED_DR,
    ItemStatus.CANCELLED_CLIENT,
]


# --- item status transitions -----------------------------------------------------------------


@pytest.mark.parametrize("status", [ItemStatus.PENDING, ItemStatus.CURRENT])
def test_an_open_item_can_be_dispensed(status) -> None:
    check_dispense(status)  # no error: the dispense makes it (or keeps it) Current


@pytest.mark.parametrize("status", ENDED)
def test_an_ended_item_cannot_be_dispensed(status) -> None:
    with pytest.raises(TransitionError, match="an ended item cannot be dispensed"):
        check_dispense(status)


@pytest.mark.parametrize(
    ("status", "new_status"),
    [
        (ItemStatus.PENDING, ItemStatus.DECLINED_DR),
        (ItemStatus.PENDING, ItemStatus.DECLINED_CLIENT),
        (ItemStatus.CURRENT, ItemStatus.CANCELLED_DR),
        (ItemStatus.CURRENT, ItemStatus.CANCELLED_CLIENT),
    ],
)
def test_declined_from_pending_and_cancelled_from_current_are_allowed(status, new_status) -> None:
    check_end(status, new_status)


@pytest.mark.parametrize("new_status", [ItemStatus.DECLINED_DR, ItemStatus.DECLINED_CLIENT])
@pytest.mark.parametrize("status", [ItemStatus.CURRENT, *ENDED])
def test_declined_only_from_pending(status, new_status) -> None:
    with pytest.raises(TransitionError, match="Only a pending item"):
        check_end(status, new_status)


@pytest.mark.parametrize("new_status", [ItemStatus.CANCELLED_DR, ItemStatus.CANCELLED_CLIENT])
@pytest.mark.parametrize("status", [ItemStatus.PENDING, *ENDED])
def test_cancelled_only_from_current(status, new_status) -> None:
    with pytest.raises(TransitionError, match="Only a dispensed item can be cancelled"):
        check_end(status, new_status)


@pytest.mark.parametrize("new_status", [ItemStatus.PENDING, ItemStatus.CURRENT])
@pytest.mark.parametrize("status", [ItemStatus.PENDING, ItemStatus.CURRENT])
def test_an_end_never_sets_pending_or_current(status, new_status) -> None:
    with pytest.raises(TransitionError, match="becomes Current only by a dispense"):
        check_end(status, new_status)


@pytest.mark.parametrize(
    ("status", "by_client", "expected"),
    [
        (ItemStatus.PENDING, False, ItemStatus.DECLINED_DR),
        (ItemStatus.PENDING, True, ItemStatus.DECLINED_CLIENT),
        (ItemStatus.CURRENT, False, ItemStatus.CANCELLED_DR),
        (ItemStatus.CURRENT, True, ItemStatus.CANCELLED_CLIENT),
    ],
)
def test_the_end_an_open_item_takes(status, by_client, expected) -> None:
    assert end_status_for(status, by_client=by_client) == expected


@pytest.mark.parametrize("status", ENDED)
def test_an_ended_item_has_no_further_end(status) -> None:
    with pytest.raises(TransitionError, match="already ended"):
        end_status_for(status)


# --- WriteBack eligibility (DESIGN.md's table) -----------------------------------------------


@pytest.fixture
def clinic(world: World):
    world.a.clinic.writeback_enabled = True
    world.a.clinic.save()
    return world.a.clinic


@pytest.mark.parametrize(
    ("product", "channel", "prescribed", "eligible", "why"),
    [
        ("carprofen", Channel.PORTAL, True, True, "portal or the store"),
        ("carprofen", Channel.STORE, True, True, "portal or the store"),
        ("apoquel", Channel.STORE, True, True, "portal or the store"),
        ("renal_diet", Channel.PORTAL, True, True, "Rx nutrition"),
        ("renal_diet", Channel.STORE, True, True, "Rx nutrition"),
        ("dasuquin", Channel.PORTAL, True, True, "in a treatment plan"),
        ("dasuquin", Channel.STORE, True, True, "in a treatment plan"),
        ("dasuquin", Channel.PORTAL, False, False, "outside a treatment plan"),
        ("dasuquin", Channel.STORE, False, False, "outside a treatment plan"),
        ("carprofen", Channel.ECONNECT, True, False, "eConnect"),
        ("renal_diet", Channel.ECONNECT, True, False, "eConnect"),
        ("dasuquin", Channel.ECONNECT, True, False, "eConnect"),
        ("compounded", Channel.PORTAL, True, False, "Wedgewood"),
        ("compounded", Channel.STORE, True, False, "Wedgewood"),
    ],
)
def test_writeback_eligibility_row_by_row(
    clinic, catalogue, product, channel, prescribed, eligible, why
) -> None:
    answer = writeback_eligibility(
        clinic=clinic, product=getattr(catalogue, product), channel=channel, prescribed=prescribed
    )

    assert answer.eligible is eligible
    assert why in answer.reason


@pytest.mark.parametrize("product", ["carprofen", "renal_diet", "dasuquin"])
def test_nothing_is_written_back_where_writeback_is_off(world: World, catalogue, product) -> None:
    clinic = world.a.clinic
    clinic.writeback_enabled = False
    clinic.save()

    answer = writeback_eligibility(
        clinic=clinic, product=getattr(catalogue, product), channel=Channel.PORTAL, prescribed=True
    )

    assert answer.eligible is False
    assert "WriteBack is off" in answer.reason
