"""Expired sessions: Django leaves them in the table (``clearsessions`` is left to cron); the
retention tick removes them in bounded batches instead of one table-wide DELETE."""

from __future__ import annotations

from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone


def sessions_expired_delete(*, batch_rows: int | None = None, max_batches: int = 100) -> int:
    """Delete sessions past their expiry, at most ``batch_rows`` a transaction."""
    batch = batch_rows or settings.RETENTION_BATCH_ROWS
    expired = Session.objects.filter(expire_date__lt=timezone.now())
    total = 0
    for _ in range(max_batches):
        with transaction.atomic():
            deleted, _ = Session.objects.filter(pk__in=expired.values("pk")[:batch]).delete()
        total += deleted
        if deleted < batch:
            break
    return total
