"""Celery doors onto WriteBack delivery and the prescriptions schedules. Each takes ids, is
safe to run twice, and returns quietly when the work is done or gone.

Each task is named ``<service>_task`` in Python, and keeps the name Celery registered before
that rename (``name=``), so beat entries and messages already queued still resolve."""

from __future__ import annotations

import logging
import smtplib

from celery import shared_task
from django.conf import settings

from prescriptions.services import autoships_due, rx_requests_expire_and_remind
from prescriptions.writeback import (
    incidents_unalerted,
    writeback_deliver,
    writeback_due,
    writeback_incident_alert,
)

logger = logging.getLogger(__name__)


# A delivery is stopped well before its row's lease runs out, so that no other worker can
# take the row while this one may still be sending it.
_DELIVERY_LIMIT = max(int(settings.WRITEBACK_LEASE.total_seconds()) - 30, 10)


@shared_task(
    name="prescriptions.tasks.writeback_deliver",
    ignore_result=True,
    soft_time_limit=_DELIVERY_LIMIT - 5,
    time_limit=_DELIVERY_LIMIT,
)
def writeback_deliver_task(item_id: int) -> None:
    """Send one outbox row to ezyVet; a row already sent, claimed or blocked is left alone."""
    result = writeback_deliver(item_id=item_id)
    if result is not None:
        logger.info("writeback %s: %s %s", item_id, result.outcome, result.error)


@shared_task(name="prescriptions.tasks.writeback_sweep", ignore_result=True)
def writeback_sweep_task() -> int:
    """Deliver every row that is due and unsent: lost messages, crashed workers, retries."""
    due = writeback_due()
    for item_id in due:
        writeback_deliver_task.delay(item_id)
    for incident_id in incidents_unalerted():
        writeback_incident_alert_task.delay(incident_id)
    return len(due)


@shared_task(
    name="prescriptions.tasks.writeback_incident_alert",
    ignore_result=True,
    autoretry_for=(OSError, smtplib.SMTPException),
    retry_backoff=30,
    max_retries=5,
)
def writeback_incident_alert_task(incident_id: int) -> None:
    """One email per incident: the row is marked only once the email went out."""
    writeback_incident_alert(incident_id=incident_id)


@shared_task(name="prescriptions.tasks.rx_requests_expire_and_remind", ignore_result=True)
def rx_requests_expire_and_remind_task() -> None:
    reminded, expired = rx_requests_expire_and_remind()
    logger.info("Rx requests: %s reminded, %s expired.", reminded, expired)


@shared_task(name="prescriptions.tasks.autoships_due", ignore_result=True)
def autoships_due_task() -> None:
    logger.info("Autoship: %s orders placed.", autoships_due())
