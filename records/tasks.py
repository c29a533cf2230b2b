"""Celery doors onto the sync engine. Each takes ids, is safe to run twice, and returns quietly
when the work is done or gone."""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import shared_task

from records.care import care_name_tokens_refresh
from records.models import SyncRun
from records.pulls import ezyvet_integrations_due, ezyvet_pull_fetch, ezyvet_pull_start
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
    except Exception:
        # The run is marked failed with the error for staff; resuming it is their call.
        logger.exception("%s %s failed.", what, run_id)


@shared_task(name="records.tasks.sync_run_apply", ignore_result=True)
def sync_run_apply_task(run_id: int) -> None:
    """Apply one stored batch. If the clinic is busy, the sweep comes back for it."""
    _run_unfinished(run_id, sync_run_process, "Run")


@shared_task(name="records.tasks.sync_runs_sweep", ignore_result=True)
def sync_runs_sweep_task() -> None:
    """Start queued runs and resume those a dead worker left (its lock lease ran out).

    The run row, not the Celery message, is the source of truth: a message lost between
    commit and publish only delays the run until this sweep.
    """
    for run_id in sync_runs_due():
        sync_run_apply_task.delay(run_id)
    for run_id in sync_fetches_abandoned():
        ezyvet_pull_task.delay(run_id)


@shared_task(name="records.tasks.ezyvet_pull", ignore_result=True)
def ezyvet_pull_task(run_id: int) -> None:
    """Fetch and store one ezyVet pull (its run was created by the schedule or "Sync now"),
    then hand the apply to the sync queue: a pull worker is never busy applying."""
    _run_unfinished(run_id, _pull_fetch_then_apply, "Pull")


def _pull_fetch_then_apply(*, run_id: int) -> None:
    run = ezyvet_pull_fetch(run_id=run_id)
    if run.status == SyncRun.Status.QUEUED:
        sync_run_apply_task.delay(run.pk)


@shared_task(name="records.tasks.ezyvet_pulls_due", ignore_result=True)
def ezyvet_pulls_due_task() -> None:
    """Start a pull for every live ezyVet integration whose interval has passed."""
    for integration in ezyvet_integrations_due():
        run, created = ezyvet_pull_start(integration=integration)
        if created:
            ezyvet_pull_task.delay_on_commit(run.pk)


@shared_task(ignore_result=True)
def care_name_tokens_refresh_task() -> None:
    """Keep Pet Owner Care's name dictionary current (new clients' names, renames)."""
    care_name_tokens_refresh()
