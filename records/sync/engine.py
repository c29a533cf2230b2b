"""The sync engine: the field policy applied to one chunk of a run's entries.

``prepare`` reads (and locks) what the chunk touches and decides everything it will write;
``write`` writes it with bulk operations, in the same transaction (``records/sync/chunk.py``).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from records.fields import (
    CLIENT_NAME_ATTRS,
    PIMS_ADDRESS_KEYS,
    client_held_values,
    client_seen,
    patient_seen,
)
from records.matching import Match, Verdict, normalize_phone
from records.merging import (
    RULE_MERGE_ACTION,
    linked_pet_detail,
    merge_audit,
    merge_row,
    merged_detail,
    rule_merge,
)
from records.models import (
    Client,
    ClientMerge,
    ManualUpdate,
    Outcome,
    Patient,
    SyncRun,
    WeightRecord,
)
from records.sync.chunk import Chunk, Held, NewRef, ref
from records.sync.plan import Entry, by_pims_id
from vetsync.lib.bulk import reserve_ids
from vetsync.pims.records import PimsClient, PimsPatient, QuarantinedRecord

# New clients that nothing in the database or the merge plan concerns are written as set
# operations (``records.sync.staged``); False sends every record through ``_decide``.
STAGE_NEW_RECORDS = True


@dataclass
class _Known:
    """What a chunk found in the database (and locked): its records and the customers the
    run's plan merges them into."""

    clients: dict[str, Client]  # by PIMS id
    patients: dict[str, Patient]  # by PIMS id
    customers: dict[int, Client]  # by pk
    customer_pets: dict[int, list[Patient]]  # the customers' pets not linked to the PIMS


class Engine:
    """The field policy for the chunks of one run: the run's merge plan, and the customers it
    has merged so far."""

    def __init__(self, *, run: SyncRun) -> None:
        self.run = run
        self.clinic = run.clinic
        self.region = self.clinic.region
        # A plan made before evidence was recorded has four items, not five.
        self.plan = {
            pims_id: Match(Verdict(v), key, rule, score, *evidence)
            for pims_id, (v, key, rule, score, *evidence) in (run.match_plan or {}).items()
        }
        # Customers this run has merged. A chunk prepared while the one before it is still
        # being written (``_apply_pipelined``) skips them rather than wait for their row locks.
        self.merged_customers: set[int] = set()
        self.staged = STAGE_NEW_RECORDS
        # Set when the clinic had no PIMS record as the run started (``fresh_start``): then no
        # record of a chunk can be known yet, and chunks skip looking their ids up.
        self.fresh = False

    def prepare(
        self, entries: Sequence[Entry], quarantined: Sequence[QuarantinedRecord] = ()
    ) -> Chunk:
        """Read (and lock) what the chunk touches and decide everything it will write.

        Writes nothing: the chunk's rows are written by ``write``, in the same transaction.
        On SQLite that transaction must already hold the write lock (``reserve_ids``).
        """
        chunk = Chunk(
            run_id=self.run.pk,
            clinic_id=self.clinic.pk,
            region=self.region,
            country=self.clinic.country,
        )
        for record in quarantined:
            chunk.quarantine(record)
        clients = [client for client, _ in entries if client is not None]
        known = self._read_known(clients)
        chunk.client_ids = iter(
            reserve_ids(Client, sum(c.pims_id not in known.clients for c in clients))
        )
        chunk.patient_ids = iter(
            reserve_ids(
                Patient,
                sum(p.pims_id not in known.patients for c in clients for p in c.patients),
            )
        )
        for client, quarantined_of_entry in entries:
            for record in quarantined_of_entry:
                chunk.quarantine(record)
            if client is None:
                continue
            if self.staged and self._is_new(client, known):
                chunk.stage(client)
            else:
                self._decide(chunk, client, known)
        chunk.seal()
        return chunk

    def write(self, chunk: Chunk) -> Counter[str]:
        """Write what ``prepare`` decided; return the chunk's counts by outcome."""
        chunk.write(self.run)
        return chunk.counts

    def _read_known(self, clients: Sequence[PimsClient]) -> _Known:
        """Lock and read the chunk's known clients and pets, then the customers it merges."""
        if self.fresh:
            return self._read_customers(clients, {}, {})
        existing = {
            c.pims_id: c
            # Locked for the chunk: a staff action on the same client waits for the commit
            # instead of being overwritten by values read before it.
            for c in by_pims_id(
                Client.objects.select_for_update(), self.clinic.pk, [c.pims_id for c in clients]
            )
        }
        existing_patients = {
            p.pims_id: p
            for p in by_pims_id(
                Patient.objects.select_for_update(),
                self.clinic.pk,
                [p.pims_id for c in clients for p in c.patients],
            )
        }
        return self._read_customers(clients, existing, existing_patients)

    def _read_customers(
        self,
        clients: Sequence[PimsClient],
        existing: dict[str, Client],
        existing_patients: dict[str, Patient],
    ) -> _Known:
        """Lock and read the customers the plan merges the chunk's new clients into."""
        customer_ids = [
            customer_id
            for c in clients
            if c.pims_id in self.plan and c.pims_id not in existing
            if (customer_id := int(self.plan[c.pims_id].customer_key)) not in self.merged_customers
        ]
        customers = {
            c.pk: c
            for c in Client.objects.select_for_update()
            .filter(pk__in=customer_ids, pims_id="", merged_into__isnull=True)
            .order_by("pk")
            if c.clinic_id == self.clinic.pk
        }
        customer_pets: dict[int, list[Patient]] = {}
        for pet in (
            Patient.objects.select_for_update()
            .filter(client_id__in=list(customers), pims_id="")
            .order_by("pk")
        ):
            customer_pets.setdefault(pet.client_id, []).append(pet)
        return _Known(existing, existing_patients, customers, customer_pets)

    def fresh_start(self) -> None:
        """Called before a run's first chunk: chunks need not look their records up when the
        clinic has no PIMS record yet. The batch names each record once and one run at a time
        writes a clinic's PIMS records, so none can appear but the run's own. (Should one
        appear anyway, its unique key stops the chunk, and the retry, resumed past the first
        chunk, looks every record up.)"""
        clinic = self.clinic.pk
        self.fresh = not (
            Client.objects.filter(clinic_id=clinic).exclude(pims_id="").exists()
            or Patient.objects.filter(clinic_id=clinic).exclude(pims_id="").exists()
        )

    def _is_new(self, client: PimsClient, known: _Known) -> bool:
        """A client to create whole as it is: unknown, its pets unknown, no merge planned."""
        return (
            client.pims_id not in known.clients
            and client.pims_id not in self.plan
            and not any(p.pims_id in known.patients for p in client.patients)
        )

    def _decide(self, chunk: Chunk, client: PimsClient, known: _Known) -> None:
        """One PIMS client: an update of a known client, a merge, or a new client."""
        current = known.clients.get(client.pims_id)
        if current is not None:
            self._update_client(chunk, current, client, known.patients)
            return
        match = self.plan.get(client.pims_id)
        customer = known.customers.get(int(match.customer_key)) if match else None
        if match and customer and match.verdict == Verdict.MERGE:
            pets = known.customer_pets.get(customer.pk, [])
            self._merge(chunk, customer, client, match, pets, known.patients)
            return
        created = self._create_client(chunk, client, known.patients)
        # A customer merged earlier in this chunk is no longer anyone's candidate.
        if match and customer and not customer.pims_id:
            chunk.matches.append((customer, created, match))
            chunk.outcome(
                "client",
                client.pims_id,
                Outcome.POSSIBLE_MATCH,
                client=created,
                customer_ref=customer.customer_ref,
                detail=f"Possible match with customer {customer.customer_ref} "
                f"({customer.full_name}): {match.rule}.",
                replace_last=True,
                match=match,
            )

    # --- new records -----------------------------------------------------------------------

    def _create_client(
        self, chunk: Chunk, pims: PimsClient, existing_patients: dict[str, Patient]
    ) -> NewRef:
        client = NewRef(next(chunk.client_ids))
        row = {
            "id": client.pk,
            "clinic_id": self.clinic.pk,
            "first_name": pims.first_name,
            "last_name": pims.last_name,
            "email": pims.email,
            "phone": pims.phone,
            "phone_normalized": normalize_phone(pims.phone, self.region),
            "address_line1": pims.address.line1,
            "address_line2": pims.address.line2,
            "city": pims.address.city,
            "state": pims.address.state,
            "postcode": pims.address.postcode,
            "country": pims.address.country or self.clinic.country,
            "is_active": pims.active,
            "pims_id": pims.pims_id,
            "pims_seen": client_seen(pims),
            "pims_modified_at": pims.modified_at,
            "created_at": chunk.now,
            "updated_at": chunk.now,
        }
        chunk.new_clients.append(row)
        chunk.outcome("client", pims.pims_id, Outcome.CREATED, client=client)
        for patient in pims.patients:
            self._patient_for(chunk, client, patient, existing_patients)
        return client

    def _create_patient(self, chunk: Chunk, client: Client | NewRef, pims: PimsPatient) -> NewRef:
        patient = NewRef(next(chunk.patient_ids))
        row = {
            "id": patient.pk,
            "clinic_id": self.clinic.pk,
            "client_id": ref(client),
            "name": pims.name,
            "species": pims.species,
            "breed": pims.breed,
            "sex": pims.sex,
            "birth_date": pims.birth_date,
            "weight": pims.weight,
            "weight_unit": pims.weight_unit.value,
            "is_deceased": pims.deceased,
            "deceased_on": pims.deceased_on if pims.deceased else None,
            "microchip": pims.microchip,
            "is_active": pims.active,
            "pims_id": pims.pims_id,
            "pims_seen": patient_seen(pims),
            "pims_modified_at": pims.modified_at,
            "created_at": chunk.now,
            "updated_at": chunk.now,
        }
        chunk.new_patients.append(row)
        if pims.weight is not None:
            chunk.weights.append(self._weighing(chunk, patient, pims))
        chunk.outcome("patient", pims.pims_id, Outcome.CREATED, client=client, patient=patient)
        return patient

    def _weighing(
        self, chunk: Chunk, patient: Patient | NewRef, pims: PimsPatient
    ) -> dict[str, Any]:
        return {
            "patient_id": ref(patient),
            "weight": pims.weight,
            "unit": pims.weight_unit.value,
            "recorded_at": pims.modified_at or chunk.now,
            "source": WeightRecord.Source.PIMS,
            "run_id": self.run.pk,
        }

    def _patient_for(
        self,
        chunk: Chunk,
        client: Client | NewRef,
        pims: PimsPatient,
        existing_patients: dict[str, Patient],
    ) -> None:
        current = existing_patients.get(pims.pims_id)
        if current is None:
            self._create_patient(chunk, client, pims)
        elif isinstance(client, NewRef) or current.client_id != client.pk:
            chunk.outcome(
                "patient",
                pims.pims_id,
                Outcome.QUARANTINED,
                client=client,
                patient=current,
                detail=f"In VetSync this pet belongs to another client (id {current.client_id}); "
                "a change of owner is not applied automatically.",
            )
        else:
            self._update_patient(chunk, client, current, pims)

    # --- merging ---------------------------------------------------------------------------

    def _merge(
        self,
        chunk: Chunk,
        customer: Client,
        pims: PimsClient,
        match: Match,
        pets: list[Patient],
        existing_patients: dict[str, Patient],
    ) -> None:
        self.merged_customers.add(customer.pk)
        merge = rule_merge(customer, pims, pets, known=existing_patients, region=self.region)
        customer.updated_at = chunk.now
        chunk.changed_clients[customer.pk] = customer
        row = merge_row(
            clinic_id=self.clinic.pk,
            customer_id=customer.pk,
            pims_id=pims.pims_id,
            method=ClientMerge.Method.RULE,
            rule=match.rule,
            run_id=self.run.pk,
            snapshot=merge.snapshot,
            evidence=match.evidence,
        )
        chunk.merges.append({**row, "created_at": chunk.now})
        chunk.audit(
            RULE_MERGE_ACTION,
            customer,
            *merge_audit(
                pims.pims_id,
                rule=match.rule,
                probability=round(match.score, 6),
                model=match.evidence.get("model", {}).get("version", ""),
                thresholds=match.evidence.get("thresholds", {}),
            ),
        )
        chunk.outcome(
            "client",
            pims.pims_id,
            Outcome.MERGED,
            client=customer,
            detail=merged_detail(customer, match.rule),
            match=match,
        )
        for patient, pet in merge.pets:
            if pet is None:
                self._patient_for(chunk, customer, patient, existing_patients)
                continue
            self._apply_weight(chunk, pet, patient)
            self._apply_deceased(chunk, pet, patient)
            pet.updated_at = chunk.now
            chunk.changed_patients[pet.pk] = pet
            chunk.outcome(
                "patient",
                patient.pims_id,
                Outcome.MERGED,
                client=customer,
                patient=pet,
                detail=linked_pet_detail(pet),
            )

    # --- changes to known records ----------------------------------------------------------

    def _is_stale(self, known: dt.datetime | None, incoming: dt.datetime | None) -> bool:
        return known is not None and incoming is not None and incoming < known

    def _update_client(
        self,
        chunk: Chunk,
        client: Client,
        pims: PimsClient,
        existing_patients: dict[str, Patient],
    ) -> None:
        if self._is_stale(client.pims_modified_at, pims.modified_at):
            chunk.outcome(
                "client",
                pims.pims_id,
                Outcome.UNCHANGED,
                client=client,
                detail="Older than the PIMS values already applied; ignored.",
            )
        else:
            self._client_policy(chunk, client, pims)
        for patient in pims.patients:
            self._patient_for(chunk, client, patient, existing_patients)

    def _client_policy(self, chunk: Chunk, client: Client, pims: PimsClient) -> None:
        old = client.pims_seen or {}
        new = client_seen(pims)
        applied: dict[str, tuple[Any, Any]] = {}
        held: list[str] = []
        differs: list[str] = []
        # An email removed in the PIMS is not applied: the pharmacy still needs one to write to.
        if old.get("email") != new["email"] and new["email"] and client.email != new["email"]:
            applied["email"] = (client.email, new["email"])
            client.email = new["email"]
        if _changed(old, new, CLIENT_NAME_ATTRS):
            self._hold(
                chunk,
                ManualUpdate.Kind.CLIENT_NAME,
                client,
                None,
                current=client_held_values(client, ManualUpdate.Kind.CLIENT_NAME),
                proposed={"first_name": new["first_name"], "last_name": new["last_name"]},
            )
            held.append("name")
        if _changed(old, new, PIMS_ADDRESS_KEYS):
            self._hold(
                chunk,
                ManualUpdate.Kind.CLIENT_ADDRESS,
                client,
                None,
                current=client_held_values(client, ManualUpdate.Kind.CLIENT_ADDRESS),
                # No country from the PIMS means "the clinic's", not "none".
                proposed={
                    **{key: new[key] for key in PIMS_ADDRESS_KEYS},
                    "country": new["country"] or client.country,
                },
            )
            held.append("address")
        for key in ("phone", "active"):
            if old.get(key) != new[key]:
                differs.append(key)
        self._record_change(
            chunk, client, client, pims.pims_id, pims.modified_at, old, new, applied, held, differs
        )

    def _update_patient(
        self, chunk: Chunk, client: Client, patient: Patient, pims: PimsPatient
    ) -> None:
        if self._is_stale(patient.pims_modified_at, pims.modified_at):
            chunk.outcome(
                "patient",
                pims.pims_id,
                Outcome.UNCHANGED,
                client=client,
                patient=patient,
                detail="Older than the PIMS values already applied; ignored.",
            )
            return
        old = patient.pims_seen or {}
        new = patient_seen(pims)
        before = {
            "weight": str(patient.weight) if patient.weight is not None else None,
            "weight_unit": patient.weight_unit,
            "is_deceased": patient.is_deceased,
            "deceased_on": patient.deceased_on,
        }
        applied: dict[str, tuple[Any, Any]] = {}
        held: list[str] = []
        if _changed(old, new, ("weight", "weight_unit")) and self._apply_weight(
            chunk, patient, pims
        ):
            applied["weight"] = (before["weight"], new["weight"])
        if _changed(old, new, ("deceased", "deceased_on")) and self._apply_deceased(
            chunk, patient, pims
        ):
            applied["deceased"] = (before["is_deceased"], pims.deceased)
        if old.get("name") != new["name"]:
            self._hold(
                chunk,
                ManualUpdate.Kind.PET_NAME,
                client,
                patient,
                current={"name": patient.name},
                proposed={"name": new["name"]},
            )
            held.append("name")
        differs = [
            key
            for key in ("species", "breed", "sex", "birth_date", "microchip", "active")
            if old.get(key) != new[key]
        ]
        self._record_change(
            chunk, patient, client, pims.pims_id, pims.modified_at, old, new, applied, held, differs
        )

    def _record_change(
        self,
        chunk: Chunk,
        record: Client | Patient,
        client: Client,
        pims_id: str,
        modified_at: dt.datetime | None,
        old: dict[str, Any],
        new: dict[str, Any],
        applied: dict[str, tuple[Any, Any]],
        held: list[str],
        differs: list[str],
    ) -> None:
        """Keep the PIMS's new values, audit what was applied, and say what happened."""
        kind = "patient" if isinstance(record, Patient) else "client"
        patient = record if isinstance(record, Patient) else None
        if old == new and record.pims_modified_at == modified_at:
            chunk.outcome(kind, pims_id, Outcome.UNCHANGED, client=client, patient=patient)
            return
        record.pims_seen = new
        record.pims_modified_at = modified_at
        record.updated_at = chunk.now
        if patient is not None:
            chunk.changed_patients[patient.pk] = patient
        else:
            chunk.changed_clients[client.pk] = client
        if applied:
            chunk.audit(
                f"sync.{kind}_updated",
                record,
                {k: v[0] for k, v in applied.items()},
                {k: v[1] for k, v in applied.items()},
            )
        chunk.outcome(
            kind,
            pims_id,
            Outcome.MANUAL_UPDATE if held else Outcome.UPDATED if applied else Outcome.UNCHANGED,
            client=client,
            patient=patient,
            detail=_describe(applied, held, differs),
        )

    def _apply_weight(self, chunk: Chunk, patient: Patient, pims: PimsPatient) -> bool:
        if pims.weight is None:
            return False
        if patient.weight == pims.weight and patient.weight_unit == pims.weight_unit.value:
            return False
        patient.weight = pims.weight
        patient.weight_unit = pims.weight_unit.value
        chunk.weights.append(self._weighing(chunk, patient, pims))
        return True

    def _apply_deceased(self, chunk: Chunk, patient: Patient, pims: PimsPatient) -> bool:
        deceased_on = pims.deceased_on if pims.deceased else None
        if patient.is_deceased == pims.deceased and patient.deceased_on == deceased_on:
            return False
        newly = pims.deceased and not patient.is_deceased
        patient.is_deceased = pims.deceased
        patient.deceased_on = deceased_on
        if newly:
            chunk.deceased.append(patient)
        return True

    def _hold(
        self,
        chunk: Chunk,
        kind: str,
        client: Client,
        patient: Patient | None,
        *,
        current: dict[str, Any],
        proposed: dict[str, Any],
    ) -> None:
        if current == proposed:
            # The pharmacy already has the PIMS's value: nothing to confirm any more.
            chunk.settled.append((client, patient, kind))
        else:
            chunk.held.append(Held(kind, client, patient, current, proposed))


def _describe(applied: dict[str, Any], held: list[str], differs: list[str]) -> str:
    parts = []
    if applied:
        parts.append("applied: " + ", ".join(sorted(applied)))
    if held:
        parts.append("held for review: " + ", ".join(held))
    if differs:
        parts.append("PIMS differs (not applied): " + ", ".join(differs))
    return "; ".join(parts)


def _changed(old: dict[str, Any], new: dict[str, Any], keys: Sequence[str]) -> bool:
    return any(old.get(key) != new.get(key) for key in keys)
