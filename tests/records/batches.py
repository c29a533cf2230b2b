"""Agent batches for tests, in the v1 format of PIMS.md."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

from clinics.models import Clinic
from records.models import SyncRun
from records.sync import sync_run_create, sync_run_process

_batch_ids = itertools.count(1)


def pet(pims_id: str = "P-1", **fields: Any) -> dict[str, Any]:
    return {
        "pims_id": pims_id,
        "name": "Biscuit",
        "species": "Canine",
        "breed": "Beagle",
        "sex": "Female spayed",
        "birth_date": "2019-04-02",
        "weight": 11.4,
        "weight_unit": "kg",
        "deceased": False,
        "deceased_on": None,
        "active": True,
        "modified_at": "2026-11-23T18:04:00Z",
        **fields,
    }


def owner(pims_id: str = "C-1", *, patients: list[dict[str, Any]] | None = None, **fields: Any):
    address = {
        "line1": "12 Alder St",
        "line2": "",
        "city": "Portland",
        "state": "OR",
        "postcode": "97205",
        "country": "US",
        **fields.pop("address", {}),
    }
    return {
        "pims_id": pims_id,
        "first_name": "Dana",
        "last_name": "Whitfield",
        "email": "dana@example.org",
        "phone": "+1 503 555 0142",
        "address": address,
        "active": True,
        "modified_at": "2026-11-23T18:04:00Z",
        "patients": [pet()] if patients is None else patients,
        **fields,
    }


def batch(*clients: dict[str, Any], batch_id: str | None = None, full: bool = False) -> str:
    return json.dumps(
        {
            "source": "syncvet",
            "batch_id": batch_id or f"test-batch-{next(_batch_ids)}",
            "sent_at": "2026-11-24T02:00:05Z",
            "full": full,
            "clients": list(clients),
        }
    )


def ingest(clinic: Clinic, body: str, **process: Any) -> SyncRun:
    """Store and apply a batch as the agent API would, returning the finished run."""
    run, _ = sync_run_create(clinic=clinic, body=body, trigger=SyncRun.Trigger.AGENT)
    return sync_run_process(run_id=run.pk, **process)


class Killed(BaseException):
    """Stands in for a worker killed between two chunks (SIGKILL runs no handler)."""


def killed_after_chunks(n: int) -> Callable[[int, int], None]:
    """A run's progress callback that kills the run once ``n`` chunks are committed."""
    done = 0

    def progress(position: int, total: int) -> None:
        nonlocal done
        done += 1
        if done == n:
            raise Killed

    return progress
