"""The sync engine: one place where PIMS records are applied by the field policy.

Every door (the agent API, ``ingest_batch``, ezyVet pulls, retries) creates a ``SyncRun`` with
the batch stored beside it and then calls ``sync_run_process``. The run is applied in chunks;
each chunk is one transaction that also moves the run's position, so a worker killed mid-batch
leaves no record half-applied and the next attempt resumes where the last commit ended. A
lease-based lock keeps one sync at a time per clinic. The field policy (DESIGN.md):

- new clients and pets are copied whole;
- client email, pet weight (with history) and deceased status are applied automatically;
- client name, client address and pet name are held as manual updates for staff;
- phone, birth date, breed, species, sex (and the rest) are kept as "PIMS differs" only.

Nothing here ever writes to a PIMS.

The package: ``runs`` (creating runs, retries, what the sweep restarts), ``lock`` (the per-clinic
lease), ``process`` (applying a run chunk by chunk), ``plan`` (reading the batch, planning
merges), ``engine`` (the field policy for one chunk) and ``chunk`` (what a chunk writes).
Merging itself is ``records/merging.py``; the field tables are ``records/fields.py``.
"""

from __future__ import annotations

from records.sync.lock import (
    LOCK_LEASE,
    LockLost,
    sync_lock_acquire,
    sync_lock_holder,
    sync_lock_release,
    sync_lock_renew,
)
from records.sync.plan import people_of, rejected_pairs
from records.sync.process import CHUNK_SIZE, ProgressCallback, sync_run_process
from records.sync.runs import (
    SyncBusy,
    payload_store,
    sync_fetches_abandoned,
    sync_run_create,
    sync_run_resume,
    sync_run_retry_quarantined,
    sync_runs_due,
)

__all__ = [
    "CHUNK_SIZE",
    "LOCK_LEASE",
    "LockLost",
    "ProgressCallback",
    "SyncBusy",
    "payload_store",
    "people_of",
    "rejected_pairs",
    "sync_fetches_abandoned",
    "sync_lock_acquire",
    "sync_lock_holder",
    "sync_lock_release",
    "sync_lock_renew",
    "sync_run_create",
    "sync_run_process",
    "sync_run_resume",
    "sync_run_retry_quarantined",
    "sync_runs_due",
]
