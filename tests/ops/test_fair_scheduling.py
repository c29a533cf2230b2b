"""Fair scheduling: first copies (and large agent batches) have their own bulk queue and
worker, so an onboarding wave queued ahead of a live clinic's delta does not delay it."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Iterator

import pytest
from django.utils import timezone

from clinics.models import Integration
from clinics.services import integration_issue_agent_token
from records.models import Client, SyncRun
from records.pulls import ezyvet_pull_run, ezyvet_pull_start
from records.tasks import ezyvet_first_copy_task, ezyvet_pulls_due_task, run_is_bulk
from tests.conftest import World
from tests.ops.test_queues import reroute, waiting, worker
from tests.records.batches import batch, owner
from tests.records.fleet import ezyvet_clinic, on_site, running_fleet
from tests.records.test_agent_api import post
from vetsync.celery import app as celery_app
from vetsync.pims.emulator import FleetEmulator

ROUTED = {
    "records.tasks.ezyvet_pull": "pull",
    "records.tasks.sync_run_apply": "sync",
    "records.tasks.ezyvet_first_copy": "bulk",
    "records.tasks.sync_run_apply_bulk": "bulk",
}


@pytest.fixture
def own_queues() -> Iterator[dict[str, str]]:
    """The pull, sync and bulk routes renamed for this test run (runs may share one Redis)."""
    tag = f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{os.getpid()}"
    names = {kind: f"{kind}-fair-{tag}" for kind in ("pull", "sync", "bulk")}
    routes = celery_app.conf.task_routes
    celery_app.conf.task_routes = {
        **routes,
        **{task: {"queue": names[kind]} for task, kind in ROUTED.items()},
    }
    reroute()
    celery_app.conf.task_always_eager = False
    try:
        yield names
    finally:
        celery_app.conf.task_always_eager = True
        celery_app.conf.task_routes = routes
        reroute()
        with celery_app.connection_for_write() as conn:
            for queue in names.values():
                # A queue never declared has nothing to purge.
                with contextlib.suppress(Exception):
                    conn.default_channel.queue_purge(queue)


@pytest.fixture
def fleet() -> Iterator[FleetEmulator]:
    with running_fleet(sites=2, clients=10, seed=9) as emulator:
        yield emulator


def wait_for(run: SyncRun, status: str, seconds: float = 60) -> SyncRun:
    deadline = time.monotonic() + seconds
    while run.status != status and time.monotonic() < deadline:
        time.sleep(0.2)
        run.refresh_from_db()
    return run


@pytest.mark.django_db(transaction=True)
def test_a_queued_first_copy_does_not_block_a_due_delta(
    fleet: FleetEmulator, own_queues: dict[str, str]
) -> None:
    live = on_site(ezyvet_clinic(1), fleet, 1)
    first, _ = ezyvet_pull_start(integration=live)
    assert ezyvet_pull_run(run_id=first.pk).status == SyncRun.Status.SUCCEEDED
    new_client = fleet.site(1).add_clients(1)[0]
    Integration.objects.filter(pk=live.pk).update(
        next_pull_at=timezone.now() - dt.timedelta(minutes=1)
    )
    onboarding = on_site(ezyvet_clinic(2), fleet, 2)  # no watermark: its first copy is due
    # The first copy was due first, so it is queued ahead of the delta.
    Integration.objects.filter(pk=onboarding.pk).update(
        next_pull_at=timezone.now() - dt.timedelta(minutes=5)
    )

    ezyvet_pulls_due_task()

    copy = SyncRun.objects.get(clinic_id=onboarding.clinic_id)
    delta = SyncRun.objects.exclude(pk=first.pk).get(clinic_id=live.clinic_id)
    assert copy.full and run_is_bulk(copy) and not delta.full
    assert waiting(own_queues["bulk"]) == 1 and waiting(own_queues["pull"]) == 1
    # The live clinics' workers (pull and sync) finish the delta; the first copy waits for
    # the bulk worker, however long the wave.
    with worker(own_queues["pull"], own_queues["sync"]):
        delta = wait_for(delta, SyncRun.Status.SUCCEEDED)
    assert delta.status == SyncRun.Status.SUCCEEDED
    assert Client.objects.filter(clinic_id=live.clinic_id, pims_id=new_client).exists()
    copy.refresh_from_db()
    assert copy.status == SyncRun.Status.FETCHING
    assert waiting(own_queues["bulk"]) == 1

    with worker(own_queues["bulk"]):
        copy = wait_for(copy, SyncRun.Status.SUCCEEDED)
    assert copy.status == SyncRun.Status.SUCCEEDED
    assert Client.objects.filter(clinic_id=onboarding.clinic_id).count() >= 10


@pytest.mark.django_db(transaction=True)
def test_a_first_copy_is_in_when_its_one_bulk_message_is_done(
    fleet: FleetEmulator, own_queues: dict[str, str]
) -> None:
    # Fetched and applied by the same message: a wave's copies are not all fetched before the
    # first is applied, and no fetched copy waits in the database behind the others.
    onboarding = on_site(ezyvet_clinic(2), fleet, 2)

    ezyvet_pulls_due_task()
    copy = SyncRun.objects.get(clinic_id=onboarding.clinic_id)
    assert copy.full and waiting(own_queues["bulk"]) == 1

    ezyvet_first_copy_task(copy.pk)  # what the bulk worker does with that message

    copy.refresh_from_db()
    assert copy.status == SyncRun.Status.SUCCEEDED
    assert Client.objects.filter(clinic_id=onboarding.clinic_id).count() >= 10
    # The dispatcher's message (the test ran its task by hand) and no apply message after it.
    assert waiting(own_queues["bulk"]) == 1


@pytest.mark.django_db(transaction=True)
def test_a_large_agent_batch_goes_to_the_bulk_queue_and_a_small_one_to_sync(
    world: World, own_queues: dict[str, str], settings
) -> None:
    settings.AGENT_BATCH_INLINE_MAX_CLIENTS = 1  # both go to the workers
    settings.SYNC_BULK_MIN_CLIENTS = 2
    token = integration_issue_agent_token(integration=world.a.clinic.integration)
    large = batch(owner("C-1"), owner("C-2"), owner("C-3"))
    small = batch(owner("C-4"), owner("C-5"))

    answers = [post(token, large).status_code, post(token, small).status_code]

    assert answers == [202, 202]
    assert waiting(own_queues["bulk"]) == 1
    assert waiting(own_queues["sync"]) == 1
