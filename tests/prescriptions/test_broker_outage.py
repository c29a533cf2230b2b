"""A broker that cannot be reached when a change commits: the change stands, the page works,
and the beat sweep delivers the work once the broker is back."""

from __future__ import annotations

import logging
from unittest import mock

import pytest
from kombu.exceptions import OperationalError

from prescriptions.models import WritebackItem
from tests.conftest import World
from tests.prescriptions.conftest import rx
from tests.prescriptions.writeback import deliver_all, ezyvet_items
from vetsync.lib.oncommit import OnCommitTask


def broker_down():
    refused = OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    return mock.patch.object(OnCommitTask, "apply_async", side_effect=refused)


def test_a_prescription_approved_while_the_broker_is_down_reaches_ezyvet_after_the_sweep(
    world: World, site, ezy_pet, catalogue, django_capture_on_commit_callbacks, caplog
) -> None:
    with (
        broker_down(),
        caplog.at_level(logging.ERROR, logger="vetsync.lib.oncommit"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        prescription = rx(world.a, ezy_pet, catalogue.carprofen)

    row = WritebackItem.objects.get(prescription=prescription)
    assert row.status == WritebackItem.Status.PENDING
    assert "event=task_not_published" in caplog.text
    assert "prescriptions.tasks.writeback_deliver" in caplog.text
    assert not list(site.records("externalprescription"))

    deliver_all(django_capture_on_commit_callbacks)  # what beat's sweep does once it is back
    assert ezyvet_items(site, prescription)["CARP-75"]["status"] == "PENDING"
    row.refresh_from_db()
    assert row.status == WritebackItem.Status.DELIVERED


def test_an_error_of_the_task_itself_still_propagates(
    world: World, ezy_pet, catalogue, django_capture_on_commit_callbacks
) -> None:
    failing = mock.patch.object(OnCommitTask, "apply_async", side_effect=RuntimeError("bug"))
    with (
        pytest.raises(RuntimeError, match="bug"),
        failing,
        django_capture_on_commit_callbacks(execute=True),
    ):
        rx(world.a, ezy_pet, catalogue.carprofen)
