"""One structured log line (``event=… key=value``, logger ``vetsync.events``) and the metrics
for every sync run that finishes and every writeback attempt, from signals: the sync engine
and the WriteBack code need not know about them.

A sync run is seen when its status is saved as succeeded or failed. An ezyVet writeback
attempt is seen when its Celery task ends (the attempt row is finished by a queryset update,
which sends no signal); an agent's acknowledgement creates its attempt finished.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from celery import signals as celery_signals
from django.db.models.signals import post_save

from vetsync.ops import metrics

logger = logging.getLogger("vetsync.events")

WRITEBACK_TASK = "prescriptions.tasks.writeback_deliver"
_task_started: dict[str, float] = {}


def fields(event: str, **values: object) -> str:
    """``event=name key=value …``; a value with spaces, quotes or '=' is JSON-quoted."""
    parts = [f"event={event}"]
    for key, value in values.items():
        text = "" if value is None else str(value)
        if not text or any(c in text for c in ' "=\n\t'):
            text = json.dumps(text)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def sync_run_saved(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    finished = {sender.Status.SUCCEEDED, sender.Status.FAILED}
    if not update_fields or "status" not in update_fields or instance.status not in finished:
        return
    started = instance.started_at or instance.created_at
    duration = (instance.finished_at - started).total_seconds() if instance.finished_at else None
    outcome = "succeeded" if instance.status == sender.Status.SUCCEEDED else "failed"
    metrics.SYNC_RUNS.labels(outcome=outcome, source=instance.source).inc()
    if duration is not None:
        metrics.SYNC_RUN_SECONDS.labels(source=instance.source).observe(duration)
    if outcome == "succeeded":
        metrics.RECORDS_APPLIED.labels(source=instance.source).inc(instance.total)
    logger.info(
        fields(
            "sync_run",
            run=instance.pk,
            clinic=instance.clinic_id,
            source=instance.source,
            trigger=instance.trigger,
            full=instance.full,
            outcome=outcome,
            total=instance.total,
            duration_s=None if duration is None else f"{duration:.3f}",
            error=instance.error[:300],
        )
    )


def writeback_attempt_logged(attempt: Any) -> None:
    from prescriptions.models import WritebackAttempt

    item = attempt.item
    latency = None
    landed = (WritebackAttempt.Outcome.DELIVERED, WritebackAttempt.Outcome.ALREADY_APPLIED)
    if item.delivered_at is not None and attempt.outcome in landed:
        latency = (item.delivered_at - item.created_at).total_seconds()
        metrics.WRITEBACK_LATENCY.observe(latency)
    metrics.WRITEBACK_ATTEMPTS.labels(outcome=attempt.outcome).inc()
    took = (
        (attempt.finished_at - attempt.started_at).total_seconds()
        if attempt.finished_at and attempt.started_at
        else None
    )
    logger.info(
        fields(
            "writeback_attempt",
            item=item.pk,
            clinic=item.clinic_id,
            target=item.target,
            kind=item.kind,
            attempt=attempt.number,
            outcome=attempt.outcome,
            http_status=attempt.http_status,
            row_status=item.status,
            duration_s=None if took is None else f"{took:.3f}",
            commit_to_delivered_s=None if latency is None else f"{latency:.3f}",
            error=(attempt.error or "")[:300],
        )
    )


def attempt_created(sender: Any, instance: Any, created: bool = False, **kwargs: Any) -> None:
    """An agent's acknowledgement: its attempt row is created finished."""
    if created and instance.finished_at is not None and instance.outcome != "sending":
        writeback_attempt_logged(instance)


def task_started(task_id: str = "", task: Any = None, **kwargs: Any) -> None:
    if task is not None and task.name == WRITEBACK_TASK:
        _task_started[task_id] = time.time()


def task_finished(task_id: str = "", task: Any = None, args: Any = None, **kwargs: Any) -> None:
    if task is None or task.name != WRITEBACK_TASK:
        return
    started = _task_started.pop(task_id, None)
    if started is None or not args:
        return
    import datetime as dt

    from prescriptions.models import WritebackAttempt

    attempt = (
        WritebackAttempt.objects.select_related("item")
        .filter(item_id=args[0], started_at__gte=dt.datetime.fromtimestamp(started - 1, dt.UTC))
        .exclude(outcome=WritebackAttempt.Outcome.SENDING)
        .order_by("-number")
        .first()
    )
    if attempt is not None:  # None: the row was blocked, taken or not due
        writeback_attempt_logged(attempt)


def connect() -> None:
    from prescriptions.models import WritebackAttempt
    from records.models import SyncRun

    post_save.connect(sync_run_saved, sender=SyncRun, dispatch_uid="ops-sync-run")
    post_save.connect(attempt_created, sender=WritebackAttempt, dispatch_uid="ops-wb-attempt")
    celery_signals.task_prerun.connect(task_started, weak=False, dispatch_uid="ops-prerun")
    celery_signals.task_postrun.connect(task_finished, weak=False, dispatch_uid="ops-postrun")
