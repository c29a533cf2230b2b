"""The sync report of PIMS.md: one row a record, for ``manage.py sync_report`` and the CSV."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from records.models import SyncRun

REPORT_COLUMNS = [
    "pims_id",
    "kind",
    "outcome",
    "client_id",
    "customer_ref",
    "detail",
    # A merge or a possible match: the match probability and each field's weight.
    "score",
    "evidence",
]


def report_rows(run: SyncRun, *, as_lists: bool = False) -> Iterator[Any]:
    """Stream the run's outcomes in the order they were applied, without loading them all."""
    rows = run.outcomes.order_by("id").values_list(
        "pims_id", "kind", "outcome", "client_id", "customer_ref", "detail", "score", "evidence"
    )
    for row in rows.iterator(chunk_size=2000):
        values = [
            *row[:3],
            row[3] if row[3] is not None else "",
            row[4],
            row[5],
            "" if row[6] is None else f"{row[6]:.6f}",
            row[7],
        ]
        yield values if as_lists else dict(zip(REPORT_COLUMNS, values, strict=True))
