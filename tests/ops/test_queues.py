"""Queues by kind of work: every task's route, and an ezyVet pull that hands its apply on."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from clinics.models import Connector
from records.models import Client, SyncRun
from records.pulls import ezyvet_pull_start
from records.tasks import ezyvet_pull_task
from tests.conftest import World
from vetsync.celery import app as celery_app
from vetsync.pims.emulator import EzyVetEmulator

OWN = ("clinics.", "records.", "prescriptions.", "vetsync.")
EXPECTED = {
    "records.tasks.sync_run_apply": "sync",
    "records.tasks.ezyvet_pull": "pull",
    "records.tasks.ezyvet_first_copy": "bulk",
    "records.tasks.sync_run_apply_bulk": "bulk",
    "prescriptions.tasks.writeback_deliver": "writeback",
}


def queue_of(name: str) -> str:
    return celery_app.amqp.router.route({}, name, (), {})["queue"].name


def test_each_task_is_routed_to_the_queue_of_its_kind_of_work(db: None) -> None:
    # db: Celery's Django fixup runs the model checks here, and on SQLite the JSONField check
    # asks the database (unless an earlier test in this process already did: order-dependent).
    celery_app.loader.import_default_modules()
    names = sorted(n for n in celery_app.tasks if n.startswith(OWN))
    assert set(EXPECTED) <= set(names)  # the registered names the routes rely on
    routed = {name: queue_of(name) for name in names}
    for name, queue in routed.items():
        assert queue == EXPECTED.get(name, celery_app.conf.task_default_queue), name
    # Emails, sweeps, refreshes and the beat schedule's work: the rest, on the default queue.
    for rest in (
        "prescriptions.tasks.writeback_incident_alert",
        "prescriptions.tasks.writeback_sweep",
        "records.tasks.sync_runs_sweep",
        "records.tasks.care_name_tokens_refresh_task",
        "clinics.tasks.onboarding_final_confirmation",
        "clinics.tasks.integration_failing_alert",
    ):
        assert routed[rest] == celery_app.conf.task_default_queue


def test_beat_sends_a_heartbeat_through_every_queue() -> None:
    sent_to = sorted(
        entry["options"]["queue"]  # type: ignore[index]
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
        if entry["task"] == "vetsync.ops.tasks.queue_heartbeat"
    )
    assert sent_to == sorted(settings.CELERY_QUEUES_ALL)
    assert {"sync", "pull", "writeback", "bulk"} <= set(sent_to)


@pytest.fixture
def own_sync_queue() -> Iterator[str]:
    """The sync route, renamed for this test run (parallel runs may share one Redis)."""
    queue = f"sync-test-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{os.getpid()}"
    routes = celery_app.conf.task_routes
    # A first copy's apply goes to the bulk queue: here both applies share the test's queue.
    celery_app.conf.task_routes = {
        **routes,
        "records.tasks.sync_run_apply": {"queue": queue},
        "records.tasks.sync_run_apply_bulk": {"queue": queue},
    }
    reroute()
    celery_app.conf.task_always_eager = False
    try:
        yield queue
    finally:
        celery_app.conf.task_always_eager = True
        celery_app.conf.task_routes = routes
        reroute()


def reroute() -> None:
    celery_app.amqp.flush_routes()
    celery_app.amqp.__dict__.pop("router", None)


def waiting(queue: str) -> int:
    with celery_app.connection_for_read() as conn:
        try:
            return conn.default_channel.queue_declare(queue=queue, passive=True).message_count
        except Exception:
            return 0


def worker(*queues: str) -> Any:
    """A real Celery worker in this process, consuming ``queues`` until the block ends."""
    return start_worker(
        celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10, queues=list(queues)
    )


@pytest.mark.django_db(transaction=True)
def test_a_pull_stores_its_batch_and_leaves_the_apply_to_a_sync_worker(
    world: World, site: EzyVetEmulator, own_sync_queue: str
) -> None:
    from clinics.services import integration_connect_ezyvet

    integration = world.a.clinic.integration
    integration.connector = Connector.EZYVET
    integration.base_url = site.base_url
    integration.save()
    assert integration_connect_ezyvet(integration=integration, text=site.credentials.as_text()).ok
    integration.refresh_from_db()
    run, _ = ezyvet_pull_start(integration=integration)

    ezyvet_pull_task.apply(args=(run.pk,))  # what the pull worker does with the message

    run.refresh_from_db()
    assert run.status == SyncRun.Status.QUEUED and run.total > 0
    assert not Client.objects.filter(clinic=world.a.clinic, pims_id__gt="").exists()
    assert waiting(own_sync_queue) == 1
    with worker(own_sync_queue):
        deadline = time.monotonic() + 60
        while run.status != SyncRun.Status.SUCCEEDED and time.monotonic() < deadline:
            time.sleep(0.2)
            run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED
    assert Client.objects.filter(clinic=world.a.clinic, pims_id__gt="").count() == run.total


@pytest.mark.django_db(transaction=True)
def test_the_sweep_resends_a_queued_run_only_once_its_message_may_be_lost(
    world: World, own_sync_queue: str, settings
) -> None:
    from records.sync import SyncBusy, sync_run_create
    from records.tasks import sync_run_apply_enqueue, sync_run_apply_task, sync_runs_sweep_task
    from tests.records.batches import batch, owner

    settings.SYNC_RESEND_AFTER_SECONDS = 2
    run, _ = sync_run_create(clinic=world.a.clinic, body=batch(owner("C-1")), trigger="agent")
    sync_run_apply_enqueue(run)
    assert waiting(own_sync_queue) == 1

    # A backlog: the run waits its turn; every sweep meanwhile adds nothing.
    sync_runs_sweep_task()
    sync_runs_sweep_task()
    assert waiting(own_sync_queue) == 1
    # Long enough without a start, the message may have been lost: one more, then quiet again.
    time.sleep(2.2)
    sync_runs_sweep_task()
    sync_runs_sweep_task()
    assert waiting(own_sync_queue) == 2

    # A worker that finds the clinic busy has used its message: the next sweep sends one.
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge(own_sync_queue)
    from unittest import mock

    with mock.patch("records.tasks.sync_run_process", side_effect=SyncBusy("busy")):
        sync_run_apply_task.apply(args=(run.pk,))
    sync_runs_sweep_task()
    assert waiting(own_sync_queue) == 1


SEEN_CONNECTIONS: list[object] = []


@celery_app.task(name="tests.ops.note_connection")
def note_connection() -> None:
    """Runs in the test's own worker thread: note which database connection the task used."""
    from django.db import connection

    connection.ensure_connection()
    SEEN_CONNECTIONS.append(connection.connection)  # kept, so no later one can take its id


@pytest.mark.django_db(transaction=True)
def test_a_worker_keeps_its_database_connection_from_task_to_task(
    own_sync_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Celery's Django fixup would close it around every task: a new PostgreSQL backend (fork,
    # authentication, cold caches) for each writeback, pull and apply. The connection lives as
    # long as CONN_MAX_AGE says (PostgreSQL's default; SQLite's settings use 0).
    from django.db import connections

    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 60)
    SEEN_CONNECTIONS.clear()
    with worker(own_sync_queue):
        for _ in range(3):
            note_connection.apply_async(queue=own_sync_queue)
        deadline = time.monotonic() + 30
        while len(SEEN_CONNECTIONS) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert len(SEEN_CONNECTIONS) == 3
    assert len({id(c) for c in SEEN_CONNECTIONS}) == 1
