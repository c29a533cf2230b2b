"""Celery doors onto the sync engine. Each takes ids, is safe to run twice, and returns quietly
when the work is done or gone."""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from clinics.sync_health import integrations_failing_unalerted
from clinics.tasks import integration_failing_alert_task
from records.care import care_name_tokens_refresh
from records.models import SyncRun
from records.pulls import ezyvet_pull_fetch, ezyvet_pull_run, ezyvet_pulls_dispatch
from records.sync import SyncBusy, sync_fetches_abandoned, sync_run_process, sync_runs_due

logger = logging.getLogger(__name__)


def _run_unfinished(run_id: int, work: Callable[..., object], what: str) -> None:
    """Call ``work(run_id=…)`` unless the run is done; a busy clinic waits for the sweep."""
    if (
        not SyncRun.objects.filter(pk=run_id)
        .exclude(status__in=[SyncRun.Status.SUCCEEDED, SyncRun.Status.FAILED])
        .exists()
    ):
        return
    try:
        work(run_id=run_id)
    except SyncBusy:
        logger.info("%s %s waits: another sync of its clinic is running.", what, run_id)
        message_forget(run_id)  # its message is used up: the next sweep sends another
    except Exception:
        # The run is marked failed with the error for staff; resuming it is their call.
        logger.exception("%s %s failed.", what, run_id)


def run_is_bulk(run: SyncRun) -> bool:
    """A first copy, or an agent batch larger than SYNC_BULK_MIN_CLIENTS: bulk work."""
    return run.full or run.total > settings.SYNC_BULK_MIN_CLIENTS


def sync_run_apply_enqueue(run: SyncRun) -> None:
    """Apply ``run`` after the commit: bulk work on the bulk queue, the rest (live clinics'
    deltas) on the sync queue, so a wave of first copies never sits in front of a delta."""
    task = sync_run_apply_bulk_task if run_is_bulk(run) else sync_run_apply_task
    task.delay_on_commit(run.pk)
    message_sent(run.pk)


def ezyvet_pull_enqueue(run: SyncRun) -> None:
    """Fetch ``run`` after the commit: a first copy on the bulk queue, a delta on the pull
    queue."""
    task = ezyvet_first_copy_task if run.full else ezyvet_pull_task
    task.delay_on_commit(run.pk)
    message_sent(run.pk)


# A run's message is remembered (in the shared cache) for SYNC_RESEND_AFTER_SECONDS: the sweep
# re-sends only a message that may have been lost, not one still waiting its turn in a long
# queue (an onboarding wave would otherwise gain a duplicate per waiting run every minute). A
# forgotten entry (cache restart) only means one harmless duplicate.


def _message_key(run_id: int) -> str:
    return f"vetsync:sync-run-message:{run_id}"


def message_sent(run_id: int) -> None:
    cache.set(_message_key(run_id), 1, timeout=settings.SYNC_RESEND_AFTER_SECONDS)


def message_forget(run_id: int) -> None:
    cache.delete(_message_key(run_id))


def message_pending(run_ids: list[int]) -> set[int]:
    """Those of ``run_ids`` whose last message was sent recently (it may still be queued)."""
    found = cache.get_many([_message_key(pk) for pk in run_ids])
    return {pk for pk in run_ids if _message_key(pk) in found}


@shared_task(name="records.tasks.sync_run_apply", ignore_result=True)
def sync_run_apply_task(run_id: int) -> None:
    """Apply one stored batch. If the clinic is busy, the sweep comes back for it."""
    _run_unfinished(run_id, sync_run_process, "Run")


@shared_task(name="records.tasks.sync_run_apply_bulk", ignore_result=True)
def sync_run_apply_bulk_task(run_id: int) -> None:
    """Apply a first copy or a large batch, on the bulk queue's own worker."""
    _run_unfinished(run_id, sync_run_process, "Run")


@shared_task(name="records.tasks.sync_runs_sweep", ignore_result=True)
def sync_runs_sweep_task() -> None:
    """Start queued runs and resume those a dead worker left (its lock lease ran out); tell
    clinics of failing spells whose alert did not go out.

    The run row, not the Celery message, is the source of truth: a message lost between
    commit and publish only delays the run until this sweep.
    """
    runs = SyncRun.objects.only("pk", "full", "total", "status").order_by("pk")
    due = list(runs.filter(pk__in=sync_runs_due()))
    queued = message_pending([run.pk for run in due if run.status == SyncRun.Status.QUEUED])
    for run in due:
        if run.pk not in queued:  # a running run here was left by a dead worker: resume now
            sync_run_apply_enqueue(run)
    fetches = list(runs.filter(pk__in=sync_fetches_abandoned()))
    queued = message_pending([run.pk for run in fetches])
    for run in fetches:
        if run.pk not in queued:
            ezyvet_pull_enqueue(run)
    for integration_id in integrations_failing_unalerted():
        integration_failing_alert_task.delay(integration_id)


@shared_task(name="records.tasks.ezyvet_pull", ignore_result=True)
def ezyvet_pull_task(run_id: int) -> None:
    """Fetch and store one ezyVet pull (its run was created by the schedule or "Sync now"),
    then hand the apply to the sync queue: a pull worker is never busy applying."""
    _run_unfinished(run_id, _pull_fetch_then_apply, "Pull")


@shared_task(name="records.tasks.ezyvet_first_copy", ignore_result=True)
def ezyvet_first_copy_task(run_id: int) -> None:
    """An ezyVet pull that is a clinic's first copy, fetched and then applied by the same bulk
    worker process, the clinic's lock held throughout: the copy is in as soon as its pages are,
    not behind the wave's other fetches, and each bulk process holds one fetched copy at most
    while another process fetches or applies the next site's."""
    _run_unfinished(run_id, ezyvet_pull_run, "First copy")


def _pull_fetch_then_apply(*, run_id: int) -> None:
    run = ezyvet_pull_fetch(run_id=run_id)
    if run.status == SyncRun.Status.QUEUED:
        sync_run_apply_enqueue(run)


@shared_task(name="records.tasks.ezyvet_pulls_due", ignore_result=True)
def ezyvet_pulls_due_task() -> None:
    """Beat's minute: start the pulls whose slot has come (``ezyvet_pulls_dispatch``)."""
    for run in ezyvet_pulls_dispatch():
        ezyvet_pull_enqueue(run)


@shared_task(ignore_result=True)
def care_name_tokens_refresh_task() -> None:
    """Keep Pet Owner Care's name dictionary current (new clients' names, renames)."""
    care_name_tokens_refresh()
