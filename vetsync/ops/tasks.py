"""Celery tasks of the operations app."""

from __future__ import annotations

from celery import shared_task

from records.retention import retention_prune
from vetsync.ops.heartbeats import heartbeat_record
from vetsync.ops.sessions import sessions_expired_delete


@shared_task(name="vetsync.ops.tasks.queue_heartbeat", ignore_result=True)
def queue_heartbeat_task(queue: str) -> None:
    """Beat sends this through ``queue``; whichever worker consumes that queue stamps it."""
    heartbeat_record(queue)


@shared_task(name="vetsync.ops.tasks.retention_prune_task", ignore_result=True)
def retention_prune_task() -> None:
    """Beat's housekeeping: sync history past its age, then expired sessions (both in bounded
    batches; what a tick leaves, the next one takes)."""
    report = retention_prune()
    if report.finished:
        sessions_expired_delete()
