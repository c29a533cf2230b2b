"""The connector's writeback: never a duplicate prescription, never a PATCH applied twice."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.pims.conftest import FakeClock
from tests.pims.writeback import PRESCRIBED_AT, prescription
from vetsync.pims.emulator import EzyVetEmulator
from vetsync.pims.ezyvet import EzyVetClient, EzyVetRequestError, EzyVetUnavailable

DISPENSED_AT = PRESCRIBED_AT + 86_400
MakeClient = Callable[..., EzyVetClient]


def test_create_find_and_update(emulator: EzyVetEmulator, ezyvet: EzyVetClient) -> None:
    created = ezyvet.externalprescription_create(prescription(emulator, "RX-1"))

    assert ezyvet.externalprescription_find("RX-1") == created
    assert ezyvet.externalprescription_find("RX-404") is None
    updated = ezyvet.externalprescription_update(
        created["id"],
        {
            "external_prescription_item_list": [
                {"external_product_reference": "OMEGA-3", "date_of_lastdispense": DISPENSED_AT}
            ]
        },
    )
    statuses = {
        i["external_product_reference"]: i["status"]
        for i in updated["external_prescription_item_list"]
    }
    assert statuses == {"CARPROFEN-75": "PENDING", "OMEGA-3": "CURRENT"}


def test_lost_answer_after_post_is_found_not_duplicated(
    emulator: EzyVetEmulator, make_client: MakeClient
) -> None:
    clock = FakeClock()
    ezyvet = make_client(clock=clock, sleep=clock.sleep)
    emulator.inject_fault("lost_write", 1)

    created = ezyvet.externalprescription_create(prescription(emulator, "RX-LOST"))

    (stored,) = emulator.state()["externalprescriptions"]
    assert created["id"] == stored["id"]
    assert emulator.state()["request_counts"]["POST externalprescription"] == 1


def test_5xx_on_post_looks_then_posts_once_more(
    emulator: EzyVetEmulator, make_client: MakeClient
) -> None:
    clock = FakeClock()
    ezyvet = make_client(clock=clock, sleep=clock.sleep)
    emulator.inject_fault("server_error", 1, endpoint="externalprescription")

    created = ezyvet.externalprescription_create(prescription(emulator, "RX-503"))

    state = emulator.state()
    assert [rx["id"] for rx in state["externalprescriptions"]] == [created["id"]]
    assert state["request_counts"]["POST externalprescription"] == 2
    assert state["request_counts"]["GET externalprescription"] == 1


def test_look_first_returns_what_an_earlier_attempt_stored(
    emulator: EzyVetEmulator, ezyvet: EzyVetClient
) -> None:
    earlier = ezyvet.externalprescription_create(prescription(emulator, "RX-AGAIN"))

    again = ezyvet.externalprescription_create(prescription(emulator, "RX-AGAIN"), look_first=True)

    assert again["id"] == earlier["id"]
    assert len(emulator.state()["externalprescriptions"]) == 1


def test_lost_answer_after_patch_is_not_sent_again(
    emulator: EzyVetEmulator, make_client: MakeClient
) -> None:
    clock = FakeClock()
    ezyvet = make_client(clock=clock, sleep=clock.sleep)
    rx = ezyvet.externalprescription_create(prescription(emulator, "RX-DECLINE"))
    emulator.inject_fault("lost_write", 1)
    decline = {
        "external_prescription_item_list": [
            {
                "external_product_reference": "OMEGA-3",
                "status": "DECLINED_CLIENT",
                "status_date": DISPENSED_AT,
            }
        ]
    }

    # A second decline would be refused ("Only Pending items…"): the client must notice
    # the first one landed.
    updated = ezyvet.externalprescription_update(rx["id"], decline)

    omega = next(
        i
        for i in updated["external_prescription_item_list"]
        if i["external_product_reference"] == "OMEGA-3"
    )
    assert omega["status"] == "DECLINED_CLIENT"
    assert emulator.state()["request_counts"]["PATCH externalprescription"] == 1


def test_lost_patch_that_did_not_land_is_sent_again(
    emulator: EzyVetEmulator, make_client: MakeClient
) -> None:
    clock = FakeClock()
    ezyvet = make_client(clock=clock, sleep=clock.sleep)
    rx = ezyvet.externalprescription_create(prescription(emulator, "RX-DROP"))
    emulator.inject_fault("drop", 1, endpoint="externalprescription")

    updated = ezyvet.externalprescription_update(rx["id"], {"date_of_lastdispense": DISPENSED_AT})

    assert {i["status"] for i in updated["external_prescription_item_list"]} == {"CURRENT"}
    assert emulator.state()["request_counts"]["PATCH externalprescription"] == 2


def test_refused_patch_raises_with_ezyvets_text(
    emulator: EzyVetEmulator, ezyvet: EzyVetClient
) -> None:
    rx = ezyvet.externalprescription_create(prescription(emulator, "RX-BAD"))
    cancel = {
        "external_prescription_item_list": [
            {"external_product_reference": "OMEGA-3", "status": "CANCELLED_DR", "status_date": 1}
        ]
    }

    with pytest.raises(EzyVetRequestError) as raised:
        ezyvet.externalprescription_update(rx["id"], cancel)

    assert raised.value.status == 400
    assert raised.value.texts == ("Only Dispensed items can be changed to Cancelled.",)


def test_writes_that_keep_failing_give_up_without_duplicates(
    emulator: EzyVetEmulator, make_client: MakeClient
) -> None:
    clock = FakeClock()
    ezyvet = make_client(clock=clock, sleep=clock.sleep, max_attempts=3)
    emulator.inject_fault("server_error", 100, endpoint="externalprescription")

    with pytest.raises(EzyVetUnavailable):
        ezyvet.externalprescription_create(prescription(emulator, "RX-DOWN"))

    assert emulator.state()["externalprescriptions"] == []


def test_create_needs_an_external_reference(emulator: EzyVetEmulator, ezyvet: EzyVetClient) -> None:
    with pytest.raises(ValueError, match="external_reference"):
        ezyvet.externalprescription_create(prescription(emulator, ""))
