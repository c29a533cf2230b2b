"""What one chunk of a run writes, decided by the engine, and the writing of it: bulk inserts
and updates in the chunk's transaction."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from clinics.models import AuditEvent
from records import hooks
from records.fields import CLIENT_UPDATE_FIELDS, PATIENT_UPDATE_FIELDS
from records.matching import Match, normalize_phone
from records.models import (
    Client,
    ClientMerge,
    ManualUpdate,
    Outcome,
    Patient,
    SyncRecordOutcome,
    SyncRun,
    WeightRecord,
)
from records.suggestions import match_evidence_text, suggestion_proposed
from records.sync.staged import StagedCreates, StagedEntry, StagedInsert, number_outcomes
from records.sync.staged import inserts as staged_inserts
from records.sync.staged import load as staged_load
from vetsync.lib import json_input
from vetsync.lib.bulk import RowInserter, bulk_update_rows, reserve_ids
from vetsync.pims.records import PimsClient, QuarantinedRecord

SYNC_ACTOR = "sync"


@dataclass(frozen=True, slots=True)
class NewRef:
    """A client or pet this chunk creates, with the id reserved for it (``reserve_ids``)."""

    pk: int


def ref(obj: Client | Patient | NewRef | None) -> int | None:
    return None if obj is None else obj.pk


@dataclass
class Held:
    """A manual update the chunk wants pending: created, or refreshed in place."""

    kind: str
    client: Client
    patient: Patient | None
    current: dict[str, Any]
    proposed: dict[str, Any]


@dataclass
class Chunk:
    """Everything one chunk writes, flushed with bulk operations in one transaction."""

    run_id: int = 0
    clinic_id: int = 0
    region: str = "US"
    country: str = "US"
    # New rows are plain dicts, not model instances: building an instance per row would cost
    # more than inserting it.
    new_clients: list[dict[str, Any]] = field(default_factory=list)
    changed_clients: dict[int, Client] = field(default_factory=dict)
    new_patients: list[dict[str, Any]] = field(default_factory=list)
    changed_patients: dict[int, Patient] = field(default_factory=dict)
    weights: list[dict[str, Any]] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)
    settled: list[tuple[Client, Patient | None, str]] = field(default_factory=list)
    matches: list[tuple[Client, NewRef, Match]] = field(default_factory=list)
    merges: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    audits: list[dict[str, Any]] = field(default_factory=list)
    deceased: list[Patient] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    now: dt.datetime = field(default_factory=timezone.now)
    # Ids reserved for the clients and pets the chunk creates.
    client_ids: Iterator[int] = field(default_factory=lambda: iter(()))
    patient_ids: Iterator[int] = field(default_factory=lambda: iter(()))
    # New clients (with their pets) created through the stage (``records.sync.staged``).
    staged: list[StagedEntry] = field(default_factory=list)
    # The new rows as database values, ready to send (``seal``).
    inserts: list[RowInserter] = field(default_factory=list)
    staged_rows: StagedCreates = field(default_factory=StagedCreates)

    def outcome(
        self,
        kind: str,
        pims_id: str,
        outcome: str,
        *,
        client: Client | NewRef | None = None,
        patient: Patient | NewRef | None = None,
        customer_ref: str = "",
        detail: str = "",
        raw: dict[str, Any] | None = None,
        replace_last: bool = False,
        match: Match | None = None,
    ) -> None:
        """What the run did with one record (a ``SyncRecordOutcome`` row), and its count."""
        if not customer_ref and isinstance(client, Client):
            customer_ref = client.customer_ref
        row = {
            "run_id": self.run_id,
            "kind": kind,
            "pims_id": pims_id[:64],  # a too-long id is the quarantine reason, not a crash
            "outcome": outcome,
            "client_id": ref(client),
            "patient_id": ref(patient),
            "customer_ref": customer_ref,
            "detail": detail[:2000],
            "raw": raw,
            "score": None if match is None else round(match.score, 6),
            "evidence": "" if match is None else match_evidence_text(match),
        }
        if replace_last:
            # The client's own row (written when it was created) becomes the possible match.
            for index in range(len(self.outcomes) - 1, -1, -1):
                previous = self.outcomes[index]
                if previous["kind"] == "client" and previous["pims_id"] == pims_id:
                    self.counts[previous["outcome"]] -= 1
                    self.counts[f"{kind}.{previous['outcome']}"] -= 1
                    self.outcomes[index] = row
                    self._count(kind, outcome)
                    return
        self.outcomes.append(row)
        self._count(kind, outcome)

    def _count(self, kind: str, outcome: str) -> None:
        # By outcome (what the reports read), and by kind and outcome, so the run page can
        # show clients and pets apart.
        self.counts[outcome] += 1
        self.counts[f"{kind}.{outcome}"] += 1

    def stage(self, client: PimsClient) -> None:
        """A new client and its pets, written by the stage; counted as the engine would."""
        entry = StagedEntry(
            client,
            next(self.client_ids),
            [next(self.patient_ids) for _ in client.patients],
            after=len(self.outcomes),
        )
        self.staged.append(entry)
        self._count("client", Outcome.CREATED)
        for _ in client.patients:
            self._count("patient", Outcome.CREATED)

    def quarantine(self, record: QuarantinedRecord) -> None:
        self.outcome(
            record.kind,
            record.pims_id,
            Outcome.QUARANTINED,
            detail=record.reason,
            # Only a batch entry can be retried; a connector's unreadable record cannot.
            # Made storable (NUL, NaN, lone surrogates): the row must never sink its chunk.
            raw=json_input.storable(record.raw) if record.raw else None,
        )

    def audit(
        self,
        action: str,
        obj: Client | Patient,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        """An audit row by the sync, naming the run."""
        self.audits.append(
            {
                "created_at": self.now,
                "actor_label": SYNC_ACTOR,
                "clinic_id": self.clinic_id,
                "action": action,
                "object_type": obj._meta.label_lower,
                "object_id": str(obj.pk),
                "object_repr": str(obj)[:200],
                "before": before,
                "after": {**(after or {}), "run": self.run_id},
            }
        )

    def seal(self) -> None:
        """Turn the new rows into database values, so writing is only sending them."""
        if self.staged:
            # The outcome rows of both paths numbered in batch order: the report reads so.
            count = len(self.outcomes) + sum(entry.rows for entry in self.staged)
            number_outcomes(self.outcomes, self.staged, iter(reserve_ids(SyncRecordOutcome, count)))
            self.staged_rows = StagedCreates.build(
                self.staged, region=self.region, phone=normalize_phone
            )
        self.inserts = [
            RowInserter(Client, with_pk=True).extend(self.new_clients),
            RowInserter(Patient, with_pk=True).extend(self.new_patients),
            RowInserter(WeightRecord).extend(self.weights),
            RowInserter(ClientMerge).extend(self.merges),
            RowInserter(SyncRecordOutcome, with_pk=bool(self.staged)).extend(self.outcomes),
            RowInserter(AuditEvent).extend(self.audits),
        ]

    def write(self, run: SyncRun) -> None:
        """Write everything the chunk holds, in the caller's transaction."""
        for inserter in self.inserts:
            if len(inserter):
                _insert(inserter)
        if self.staged:
            staged_load(self.staged_rows)
            for insert in staged_inserts(
                run_id=run.pk, clinic_id=self.clinic_id, country=self.country, now=self.now
            ):
                _insert(insert)
        bulk_update_rows(Client, self.changed_clients.values(), CLIENT_UPDATE_FIELDS)
        bulk_update_rows(Patient, self.changed_patients.values(), PATIENT_UPDATE_FIELDS)
        self._write_manual_updates(run)
        ManualUpdate.objects.bulk_create(
            [
                ManualUpdate(
                    clinic=run.clinic,
                    kind=ManualUpdate.Kind.POSSIBLE_MATCH,
                    client=customer,
                    candidate_id=candidate.pk,
                    detail=match.rule,
                    proposed=suggestion_proposed(match),
                    run=run,
                    created_at=self.now,
                    updated_at=self.now,
                )
                for customer, candidate, match in self.matches
            ]
        )
        if self.merges:
            # A customer merged by rule is nobody's possible match any more.
            ManualUpdate.objects.filter(
                client_id__in=[m["customer_id"] for m in self.merges],
                kind=ManualUpdate.Kind.POSSIBLE_MATCH,
                status=ManualUpdate.Status.PENDING,
            ).update(
                status=ManualUpdate.Status.SUPERSEDED,
                resolved_at=self.now,
                resolution_note="Merged automatically with another PIMS client.",
            )
        hooks.patients_became_deceased(self.deceased)

    def _write_manual_updates(self, run: SyncRun) -> None:
        """Held changes: refresh the pending update of the same kind, or create one; settle
        those the PIMS now agrees with."""
        if not self.held and not self.settled:
            return
        client_ids = {h.client.pk for h in self.held} | {c.pk for c, _, _ in self.settled}
        pending: dict[tuple[int, int | None, str], ManualUpdate] = {
            (mu.client_id, mu.patient_id, mu.kind): mu
            for mu in ManualUpdate.objects.select_for_update()
            .filter(
                clinic=run.clinic,
                client_id__in=client_ids,
                status=ManualUpdate.Status.PENDING,
                candidate__isnull=True,
            )
            .order_by("pk")
        }
        for client, patient, kind in self.settled:
            found = pending.pop((client.pk, patient.pk if patient else None, kind), None)
            if found is not None:
                found.status = ManualUpdate.Status.SUPERSEDED
                found.resolved_at = self.now
                found.resolution_note = "The PIMS now matches the pharmacy's value."
                found.save(update_fields=["status", "resolved_at", "resolution_note"])
        creates = []
        for held in self.held:
            key = (held.client.pk, held.patient.pk if held.patient else None, held.kind)
            found = pending.get(key)
            if found is not None:
                found.proposed = held.proposed
                found.current = held.current
                found.run = run
                found.updated_at = self.now
                found.save(update_fields=["proposed", "current", "run", "updated_at"])
                continue
            creates.append(
                ManualUpdate(
                    clinic=run.clinic,
                    kind=held.kind,
                    client=held.client,
                    patient=held.patient,
                    current=held.current,
                    proposed=held.proposed,
                    run=run,
                    created_at=self.now,
                    updated_at=self.now,
                )
            )
        ManualUpdate.objects.bulk_create(creates, batch_size=500)


def _insert(inserter: RowInserter | StagedInsert) -> None:
    # One name for the tests to intercept (a crash between two inserts of a chunk).
    inserter.flush()
