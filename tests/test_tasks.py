"""Celery's task names are a contract: beat's schedule and the messages already in the queue
name a task by the name Celery registered it under, whatever its Python name is now."""

from __future__ import annotations

from django.conf import settings

from vetsync.celery import app as celery_app

# Every name registered before the tasks were renamed ``<service>_task`` (issue 14). A task
# may be added; none of these may go, or a queued message and a beat entry stop resolving.
REGISTERED_NAMES = {
    "clinics.tasks.onboarding_final_confirmation",
    "clinics.tasks.onboarding_overdue_summary",
    "clinics.tasks.record_worker_heartbeat",
    "prescriptions.tasks.autoships_due",
    "prescriptions.tasks.rx_requests_expire_and_remind",
    "prescriptions.tasks.writeback_deliver",
    "prescriptions.tasks.writeback_incident_alert",
    "prescriptions.tasks.writeback_sweep",
    "records.tasks.care_name_tokens_refresh_task",
    "records.tasks.ezyvet_pull",
    "records.tasks.ezyvet_pulls_due",
    "records.tasks.sync_run_apply",
    "records.tasks.sync_runs_sweep",
}


def _registered() -> set[str]:
    # As a worker loads them; Celery's Django fixup runs Django's checks then (hence ``db``).
    celery_app.loader.import_default_modules()
    return {name for name in celery_app.tasks if not name.startswith("celery.")}


def test_every_task_name_registered_before_the_renames_still_resolves(db: None) -> None:
    assert REGISTERED_NAMES - _registered() == set()


def test_every_beat_entry_names_a_registered_task(db: None) -> None:
    registered = _registered()
    unknown = {
        entry: spec["task"]
        for entry, spec in settings.CELERY_BEAT_SCHEDULE.items()
        if spec["task"] not in registered
    }
    assert unknown == {}
