"""Where a client's or pet's values came from, what the PIMS says now, and their timeline.

Everything here is read from what the writes already leave behind: ``SyncRecordOutcome`` rows
(a record copied or merged by a run), ``AuditEvent`` rows (every change by sync, staff, the
store import or Pet Owner Care, with its before/after values) and ``ClientMerge`` snapshots.
Nothing is stored twice, and a change nobody logged cannot be shown: the services log them all.

``events``: the timeline; ``provenance``: each value's source and "PIMS differs";
``weights``: the weight chart.
"""

from __future__ import annotations

from records.history.events import (
    CARE_PREFIX,
    TIMELINE_LIMIT,
    UNMERGE_ACTION,
    TimelineEntry,
    name_history,
    record_events,
    record_outcomes,
    timeline,
)
from records.history.provenance import (
    FieldRow,
    Source,
    client_pims_differs,
    client_rows,
    field_sources,
    patient_pims_differs,
    patient_rows,
)
from records.history.weights import WeightChart, weight_chart

__all__ = [
    "CARE_PREFIX",
    "TIMELINE_LIMIT",
    "UNMERGE_ACTION",
    "FieldRow",
    "Source",
    "TimelineEntry",
    "WeightChart",
    "client_pims_differs",
    "client_rows",
    "field_sources",
    "name_history",
    "patient_pims_differs",
    "patient_rows",
    "record_events",
    "record_outcomes",
    "timeline",
    "weight_chart",
]
