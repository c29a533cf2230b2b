"""The per-clinic sync lock: a lease one worker holds while it applies a run."""

from __future__ import annotations

import datetime as dt

from django.db.models import Q
from django.utils import timezone

from clinics.models import Clinic
from records.models import SyncLock, SyncRun

LOCK_LEASE = dt.timedelta(minutes=2)


class LockLost(Exception):
    """This worker's lease ran out and another worker took the clinic's sync over."""


def sync_lock_acquire(run: SyncRun, owner: str) -> bool:
    """Take the clinic's lock for ``run`` on behalf of one worker (``owner``).

    A second worker with the same run (a duplicate message, the sweep) is refused while the
    first one's lease is valid: two workers must never apply one run side by side.
    """
    now = timezone.now()
    free = SyncLock.objects.filter(clinic_id=run.clinic_id).filter(
        Q(run__isnull=True) | Q(expires_at__lt=now) | Q(run=run, owner=owner)
    )
    if free.update(run=run, owner=owner, expires_at=now + LOCK_LEASE) == 1:
        return True
    # Not claimed: the lock is held, or this is the clinic's first sync and it has no row yet.
    SyncLock.objects.get_or_create(clinic_id=run.clinic_id)
    return free.update(run=run, owner=owner, expires_at=now + LOCK_LEASE) == 1


def sync_lock_renew(run: SyncRun, owner: str) -> None:
    """Extend the lease; raise ``LockLost`` (rolling back the chunk) if it is not ours."""
    renewed = SyncLock.objects.filter(clinic_id=run.clinic_id, run=run, owner=owner).update(
        expires_at=timezone.now() + LOCK_LEASE
    )
    if renewed != 1:
        raise LockLost(f"Run {run.pk} lost its lock to another worker.")


def sync_lock_release(run: SyncRun, owner: str) -> None:
    SyncLock.objects.filter(clinic_id=run.clinic_id, run=run, owner=owner).update(
        run=None, owner="", expires_at=None
    )


def sync_lock_holder(clinic: Clinic) -> SyncRun | None:
    """The run holding the clinic's lock right now, if any."""
    lock = SyncLock.objects.filter(
        clinic=clinic, run__isnull=False, expires_at__gte=timezone.now()
    ).select_related("run")
    found = lock.first()
    return found.run if found else None
