"""The run page follows a sync live and stops polling when the run ends."""

from __future__ import annotations

from typing import Any

import pytest

from records.sync import sync_run_create, sync_run_process
from tests.browser.conftest import log_in
from tests.conftest import World
from tests.records.batches import batch, owner, pet

pytestmark = pytest.mark.django_db(transaction=True)


def test_progress_updates_in_place_and_polling_stops(world: World, page: Any) -> None:
    run, _ = sync_run_create(
        clinic=world.a.clinic,
        body=batch(owner(), owner("C-2", patients=[pet("P-2", weight=-1)])),
        trigger="agent",
    )
    log_in(page, world.a.staff.username)
    page.goto(run.get_absolute_url())
    assert page.get_by_test_id("run-status").inner_text() == "Queued"
    assert page.locator("#run-progress[hx-trigger]").count() == 1

    sync_run_process(run_id=run.pk)  # a worker applies it while the page is open

    page.get_by_test_id("run-status").filter(has_text="Finished").wait_for()
    assert page.get_by_test_id("count-created").inner_text() == "3"
    assert page.get_by_test_id("count-quarantined").inner_text() == "1"
    assert page.locator("#run-progress[hx-trigger]").count() == 0  # no more polling
    assert page.locator("progress").get_attribute("value") == "100"
    # The quarantine list is part of the full page: a reload shows it with the reason.
    page.reload()
    assert "weight cannot be negative" in page.locator("body").inner_text()
    assert page.console_errors == []
