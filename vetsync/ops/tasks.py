"""Celery tasks of the operations app."""

from __future__ import annotations

from celery import shared_task

from vetsync.ops.heartbeats import heartbeat_record


@shared_task(name="vetsync.ops.tasks.queue_heartbeat", ignore_result=True)
def queue_heartbeat_task(queue: str) -> None:
    """Beat sends this through ``queue``; whichever worker consumes that queue stamps it."""
    heartbeat_record(queue)
