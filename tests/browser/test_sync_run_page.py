"""The run page follows a sync live, every section of it, and stops polling when the run ends;
its counts add up, clients and pets apart."""

from __future__ import annotations

from typing import Any

import pytest

from records.sync import sync_run_create, sync_run_process
from tests.browser.conftest import log_in, shot
from tests.conftest import World
from tests.records.batches import batch, owner, pet

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_section_updates_live_and_polling_stops(world: World, page: Any) -> None:
    run, _ = sync_run_create(
        clinic=world.a.clinic,
        body=batch(
            owner(patients=[pet("P-1"), pet("P-3", name="Pepper")]),
            owner("C-2", patients=[pet("P-2", weight=-1)]),
        ),
        trigger="agent",
    )
    log_in(page, world.a.staff.username)
    page.goto(run.get_absolute_url())
    assert page.get_by_test_id("run-status").inner_text() == "Queued"
    assert page.locator("#run-live[hx-trigger]").count() == 1
    assert "Outcomes appear as the run applies records." in page.locator("main").inner_text()

    sync_run_process(run_id=run.pk)  # a worker applies it while the page is open

    page.get_by_test_id("run-status").filter(has_text="Finished").wait_for()
    # Counts: two clients created; two pets created, one quarantined; they add up.
    assert page.get_by_test_id("count-created-clients").inner_text() == "2"
    assert page.get_by_test_id("count-created-pets").inner_text() == "2"
    assert page.get_by_test_id("count-quarantined-pets").inner_text() == "1"
    assert page.get_by_test_id("count-all-clients").inner_text() == "2"  # = the batch's clients
    assert page.get_by_test_id("count-all-pets").inner_text() == "3"
    assert page.get_by_test_id("count-all-total").inner_text() == "5"
    assert "2 of 2 client records applied" in page.get_by_test_id("run-position").inner_text()
    # The sections below the progress updated too, without a reload.
    main = page.locator("main").inner_text()
    assert "Outcomes appear as the run applies records." not in main
    assert "weight cannot be negative" in main  # the quarantine list
    assert page.locator("table.outcomes tbody tr").count() == 5
    assert page.locator("#run-live[hx-trigger]").count() == 0  # no more polling
    assert page.locator("progress").get_attribute("value") == "100"
    # Screen readers hear the end of the run.
    assert "finished" in page.locator("#run-announce").inner_text()
    page.wait_for_timeout(1500)  # polling has stopped: the page stays as it is
    assert page.locator("table.outcomes tbody tr").count() == 5

    # A pet's name finds its owner's records among the run's outcomes; the search is cleared.
    page.get_by_label("Find a record").fill("pepper")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**q=pepper**")
    rows = page.locator("table.outcomes tbody tr")
    assert rows.locator("td:nth-child(2)").all_inner_texts() == ["Client", "Pet", "Pet"]
    assert "Pepper" in rows.nth(2).inner_text()
    shot(page, "run-outcomes-search")
    page.get_by_role("link", name="Show every record").click()
    page.wait_for_url(lambda url: "q=" not in url)
    assert page.locator("table.outcomes tbody tr").count() == 5

    # The list of runs says clients and pets apart too.
    page.goto("/c/alder/sync/")
    assert page.get_by_test_id("run-records").first.inner_text() == "2 / 3"
    assert page.get_by_test_id("run-created").first.inner_text() == "2 / 2"
    assert page.console_errors == []
