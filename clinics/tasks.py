"""Celery tasks for clinics. Thin doors onto services: ids in, load, call, safe to run twice."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.core.cache import cache
from django.utils import timezone

from clinics import onboarding, sync_health

logger = logging.getLogger(__name__)

WORKER_HEARTBEAT_KEY = "vetsync:worker-heartbeat"


@shared_task(name="clinics.tasks.record_worker_heartbeat")
def record_worker_heartbeat_task() -> str:
    """Beat sends this every minute; the dashboard shows when a worker last answered."""
    stamp = timezone.now().isoformat()
    cache.set(WORKER_HEARTBEAT_KEY, stamp, timeout=None)
    return stamp


@worker_ready.connect
def _heartbeat_when_ready(**kwargs: object) -> None:
    # Beat's first heartbeat comes a minute after it starts; a worker says so at once.
    record_worker_heartbeat_task()


@shared_task(name="clinics.tasks.onboarding_final_confirmation")
def onboarding_final_confirmation_task(checklist_id: int) -> bool:
    """After the first successful sync commits: the "we are receiving your data" email, once."""
    return onboarding.onboarding_final_confirmation_send(checklist_id=checklist_id) is not None


@shared_task(name="clinics.tasks.onboarding_final_confirmations_sweep")
def onboarding_final_confirmations_sweep_task() -> int:
    """Beat sends this every five minutes: a confirmation whose task was lost (the broker was
    down after the first sync committed) or whose send failed goes now. Returns how many."""
    sent = 0
    for checklist_id in onboarding.onboarding_final_confirmations_unsent():
        try:
            sent += (
                onboarding.onboarding_final_confirmation_send(checklist_id=checklist_id) is not None
            )
        except Exception:
            # One clinic's failing send never stops the others; the next sweep tries again.
            logger.exception("Final confirmation of checklist %s not sent.", checklist_id)
    return sent


@shared_task(name="clinics.tasks.onboarding_overdue_summary")
def onboarding_overdue_summary_task() -> int:
    """Beat sends this daily: the onboarding team's list of overdue steps (once per day)."""
    return onboarding.onboarding_overdue_summary_send(day=timezone.localdate())


@shared_task(name="clinics.tasks.integration_failing_alert")
def integration_failing_alert_task(integration_id: int) -> bool:
    """Syncs keep failing: tell the clinic and the onboarding team, once per failing spell."""
    return sync_health.integration_failing_alert(integration_id=integration_id)
