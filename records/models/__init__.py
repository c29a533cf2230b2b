"""The records app's models, one sub-module per kind of record.

``people``: clients, pets and weighings; ``runs``: sync runs, their outcomes and the lock;
``updates``: changes held for staff; ``merges``: merges and rejected matches; ``care``: Pet
Owner Care's log. Everything is imported here, for Django's app registry and for callers.
"""

from __future__ import annotations

# In the order the models were first declared: the app registry, and so the content types
# and permissions a new database gets, keep their order.
# isort: off
from records.models.people import (
    Client,
    ClientQuerySet,
    Patient,
    PatientQuerySet,
    WeightRecord,
    WeightUnit,
    _prefix,
    changed_fields_error,
    phone_prefixes,
)
from records.models.runs import (
    Outcome,
    SyncLock,
    SyncRecordOutcome,
    SyncRun,
    SyncRunPayload,
    SyncRunQuerySet,
)
from records.models.updates import FIELD_LABELS, ManualUpdate, ManualUpdateQuerySet
from records.models.merges import ClientMerge, MatchRejection
from records.models.care import CARE_LOG_PERMISSION, CareLogEntry
from records.models.extracts import FullExtract, FullExtractPart
# isort: on

__all__ = [
    "CARE_LOG_PERMISSION",
    "FIELD_LABELS",
    "CareLogEntry",
    "Client",
    "ClientMerge",
    "ClientQuerySet",
    "FullExtract",
    "FullExtractPart",
    "ManualUpdate",
    "ManualUpdateQuerySet",
    "MatchRejection",
    "Outcome",
    "Patient",
    "PatientQuerySet",
    "SyncLock",
    "SyncRecordOutcome",
    "SyncRun",
    "SyncRunPayload",
    "SyncRunQuerySet",
    "WeightRecord",
    "WeightUnit",
    "_prefix",
    "changed_fields_error",
    "phone_prefixes",
]
