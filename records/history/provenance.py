"""Where each of a client's or pet's values came from, and what the PIMS says now: the rows
of the record's page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from clinics.display import event_actor
from clinics.models import AuditEvent
from records.fields import CLIENT_ADDRESS_ATTRS, CLIENT_TO_ADDRESS, PET_FILL_IF_EMPTY
from records.history.events import (
    CARE_PREFIX,
    KIND_LABELS,
    UNMERGE_ACTIONS,
    changed_attrs,
    event_kind,
)
from records.matching import normalize_phone
from records.merging import UNMERGE_COPY_ACTION
from records.models import (
    Client,
    ClientMerge,
    ManualUpdate,
    Outcome,
    Patient,
    SyncRecordOutcome,
    WeightRecord,
)

# (group, label, the model attributes shown together)
CLIENT_FIELDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("name", "Name", ("first_name", "last_name")),
    ("email", "Email", ("email",)),
    ("phone", "Phone", ("phone",)),
    ("address", "Address", CLIENT_ADDRESS_ATTRS),
)
PATIENT_FIELDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("name", "Name", ("name",)),
    ("species", "Species", ("species",)),
    ("breed", "Breed", ("breed",)),
    ("sex", "Sex", ("sex",)),
    ("birth_date", "Birth date", ("birth_date",)),
    ("weight", "Weight", ("weight", "weight_unit")),
    ("deceased", "Deceased", ("is_deceased", "deceased_on")),
)


@dataclass(frozen=True)
class Source:
    """Where a value came from: the kind of source, a sentence, when and who."""

    kind: str
    label: str
    at: dt.datetime | None = None
    by: str = ""

    @property
    def kind_label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)


@dataclass
class FieldRow:
    """One line of the client's or pet's details."""

    key: str
    label: str
    value: str
    source: Source | None = None
    pims_value: str | None = None  # set only when the PIMS differs
    pending: ManualUpdate | None = None


# --- provenance ----------------------------------------------------------------------------


def _origin_from_outcomes(outcomes: Iterable[SyncRecordOutcome]) -> Source | None:
    for outcome in outcomes:
        if outcome.outcome in {Outcome.CREATED, Outcome.POSSIBLE_MATCH}:
            return Source("pims", "Copied from the PIMS", outcome.run.created_at, "sync")
    return None


def _event_source(event: AuditEvent) -> Source | None:
    kind = event_kind(event)
    action = event.action
    if action.startswith(CARE_PREFIX):
        label = "Pet Owner Care change at the owner's request"
    elif kind == "pims":
        label = "Changed in the PIMS, applied automatically"
    elif action.startswith("manual_update.accepted.") or (
        action == "patient.renamed"
        and isinstance(event.after, dict)
        and event.after.get("manual_update")
    ):
        label = "Accepted manual update"
    elif action == "patient.renamed":
        label = "Renamed by staff"
    elif action == "customer.imported_update":
        label = "Home-delivery store import"
    elif action in UNMERGE_ACTIONS:
        label = "Restored by unmerge"
    else:
        label = "Changed by staff" if kind == "staff" else "Changed"
    return Source(kind, label, event.created_at, event_actor(event))


def field_sources(
    obj: Client | Patient,
    *,
    events: Sequence[AuditEvent],
    outcomes: Sequence[SyncRecordOutcome],
    merges: Sequence[ClientMerge] = (),
) -> dict[str, Source]:
    """attribute -> where its current value came from: the origin, then each later change."""
    fields = CLIENT_FIELDS if isinstance(obj, Client) else PATIENT_FIELDS
    attrs = [a for _, _, group in fields for a in group]
    origin = _origin(obj, outcomes)
    sources: dict[str, Source] = dict.fromkeys(attrs, origin) if origin else {}
    timed = [
        *_merge_changes(obj, merges, outcomes),
        *_event_changes(events, attrs),
    ]
    for _, _, changed, source in sorted(timed, key=lambda t: (t[0], t[1])):
        for attr in changed:
            if attr in sources or attr in attrs:
                sources[attr] = source
    return sources


# A change to some of a record's attributes: (when, order among changes at one time, the
# attributes, their source).
_Change = tuple[dt.datetime, int, list[str], Source]


def _origin(obj: Client | Patient, outcomes: Iterable[SyncRecordOutcome]) -> Source | None:
    """Where the record came from: the PIMS (a sync copied it) or a home-delivery signup."""
    origin = _origin_from_outcomes(outcomes)
    if origin is None:
        signed_up = obj.customer_ref if isinstance(obj, Client) else not obj.pims_id
        if signed_up:
            origin = Source("store", "Home-delivery signup", obj.created_at)
        elif isinstance(obj, Patient) or obj.pims_id:
            # A client copied by a sync whose outcome rows retention has since removed.
            origin = Source("pims", "Copied from the PIMS", obj.created_at, "sync")
    return origin


def _merge_changes(
    obj: Client | Patient, merges: Sequence[ClientMerge], outcomes: Sequence[SyncRecordOutcome]
) -> list[_Change]:
    """What a merge filled in (values the customer did not have) came from the PIMS, and so
    did a linked pet's weight and deceased status."""
    timed: list[_Change] = []
    for merge in merges:
        filled = _filled_by_merge(obj, merge)
        if filled:
            how = (
                "at an automatic merge"
                if merge.method == ClientMerge.Method.RULE
                else ("at a merge confirmed by staff")
            )
            # The badge says "PIMS": the label does not start with it again.
            source = Source("pims", f"Filled in from the PIMS {how}", merge.created_at)
            timed.append((merge.created_at, 0, filled, source))
    for outcome in outcomes:
        if outcome.outcome == Outcome.MERGED and isinstance(obj, Patient):
            linked = ["weight", "weight_unit", "is_deceased", "deceased_on"]
            at = outcome.run.created_at
            source = Source("pims", "Taken from the PIMS at the merge", at, "sync")
            timed.append((at, 0, linked, source))
    return timed


def _event_changes(events: Sequence[AuditEvent], attrs: list[str]) -> list[_Change]:
    timed: list[_Change] = []
    for event in events:
        changed = changed_attrs(event)
        if event.action == UNMERGE_COPY_ACTION:
            changed = attrs
        source = _event_source(event)
        if changed and source is not None:
            timed.append((event.created_at, 1, changed, source))
    return timed


def _filled_by_merge(obj: Client | Patient, merge: ClientMerge) -> list[str]:
    snapshot = merge.snapshot or {}
    if isinstance(obj, Client):
        before = snapshot.get("customer") or {}
        if before.get("id") != obj.pk:
            return []
        return [
            attr
            for _, _, group in CLIENT_FIELDS
            for attr in group
            if not before.get(attr) and getattr(obj, attr)
        ]
    for pet in snapshot.get("pets") or []:
        if pet.get("id") == obj.pk:
            return [
                attr
                for attr in (*PET_FILL_IF_EMPTY, "birth_date")
                if not pet.get(attr) and getattr(obj, attr)
            ]
    return []


def _source_for(sources: dict[str, Source], attrs: Sequence[str]) -> Source | None:
    """The most recent source among a group's attributes."""
    found = [sources[a] for a in attrs if a in sources]
    if not found:
        return None
    return max(found, key=lambda s: s.at or dt.datetime.min.replace(tzinfo=dt.UTC))


# --- "PIMS differs" ------------------------------------------------------------------------


def _address(values: dict[str, Any]) -> str:
    city_line = " ".join(
        part for part in (values.get("city"), values.get("state"), values.get("postcode")) if part
    )
    lines = [values.get("address_line1"), values.get("address_line2"), city_line]
    return ", ".join(line for line in lines if line)


def client_pims_differs(client: Client) -> dict[str, str]:
    """group -> the PIMS's value, for the fields where it differs from the pharmacy's."""
    seen = client.pims_seen or {}
    if not client.pims_id or not seen:
        return {}
    found = {
        "name": _pims_name(client, seen),
        "email": _pims_email(client, seen),
        "phone": _pims_phone(client, seen),
        "address": _pims_address(client, seen),
    }
    return {group: value for group, value in found.items() if value is not None}


# Each: the PIMS's value when it differs from the client's, else None.


def _pims_name(client: Client, seen: dict[str, Any]) -> str | None:
    pims_name = (seen.get("first_name", ""), seen.get("last_name", ""))
    if "first_name" in seen and pims_name != (client.first_name, client.last_name):
        return " ".join(part for part in pims_name if part)
    return None


def _pims_email(client: Client, seen: dict[str, Any]) -> str | None:
    if "email" in seen and (seen.get("email") or "").lower() != client.email.lower():
        return seen.get("email") or ""
    return None


def _pims_phone(client: Client, seen: dict[str, Any]) -> str | None:
    if "phone" in seen:
        region = client.country or "US"  # the client's own country, not the clinic's
        if normalize_phone(seen.get("phone") or "", region) != client.phone_normalized:
            return seen.get("phone") or ""
    return None


def _pims_address(client: Client, seen: dict[str, Any]) -> str | None:
    if "line1" not in seen:
        return None
    pims_address = {attr: seen.get(key) or "" for attr, key in CLIENT_TO_ADDRESS.items()}
    ours = {attr: getattr(client, attr) for attr in CLIENT_ADDRESS_ATTRS}
    if not pims_address["country"]:  # a PIMS without countries: the clinic's is assumed
        pims_address["country"] = ours["country"]
    if _norm(pims_address) != _norm(ours):
        return _address(pims_address)
    return None


def _norm(values: dict[str, Any]) -> dict[str, str]:
    return {k: " ".join(str(v or "").split()).lower() for k, v in values.items()}


def patient_pims_differs(patient: Patient) -> dict[str, str]:
    seen = patient.pims_seen or {}
    if not patient.pims_id or not seen:
        return {}
    differs: dict[str, str] = {}
    for attr in ("name", "species", "breed", "sex"):
        if attr in seen and (seen.get(attr) or "").strip() != getattr(patient, attr).strip():
            differs[attr] = seen.get(attr) or ""
    if "birth_date" in seen:
        ours = patient.birth_date.isoformat() if patient.birth_date else None
        if (seen.get("birth_date") or None) != ours:
            differs["birth_date"] = seen.get("birth_date") or ""
    return differs


# --- the rows on the page ------------------------------------------------------------------


def client_rows(
    client: Client,
    *,
    sources: dict[str, Source],
    pending: Sequence[ManualUpdate],
) -> list[FieldRow]:
    differs = client_pims_differs(client)
    by_kind = {u.kind: u for u in pending if u.patient_id is None and u.candidate_id is None}
    values = {
        "name": client.full_name,
        "email": client.email,
        "phone": client.phone,
        "address": _address({a: getattr(client, a) for a in CLIENT_ADDRESS_ATTRS}),
    }
    pending_for = {
        "name": ManualUpdate.Kind.CLIENT_NAME,
        "address": ManualUpdate.Kind.CLIENT_ADDRESS,
    }
    rows = []
    for key, label, attrs in CLIENT_FIELDS:
        rows.append(
            FieldRow(
                key=key,
                label=label,
                value=values[key],
                source=_source_for(sources, attrs),
                pims_value=differs.get(key),
                pending=by_kind.get(pending_for.get(key, "")),
            )
        )
    return rows


def patient_rows(
    patient: Patient,
    *,
    sources: dict[str, Source],
    pending: Sequence[ManualUpdate],
    latest_weight: WeightRecord | None,
) -> list[FieldRow]:
    differs = patient_pims_differs(patient)
    rename = next((u for u in pending if u.kind == ManualUpdate.Kind.PET_NAME), None)
    weight = f"{patient.weight} {patient.weight_unit}" if patient.weight is not None else ""
    deceased = ""
    if patient.is_deceased:
        deceased = f"Yes, {patient.deceased_on:%-d %b %Y}" if patient.deceased_on else "Yes"
    values = {
        "name": patient.name,
        "species": patient.species,
        "breed": patient.breed,
        "sex": patient.sex,
        "birth_date": patient.birth_date.strftime("%-d %b %Y") if patient.birth_date else "",
        "weight": weight,
        "deceased": deceased or "No",
    }
    rows = []
    for key, label, attrs in PATIENT_FIELDS:
        source = _source_for(sources, attrs)
        if key == "weight" and latest_weight is not None:
            source = Source(
                "pims" if latest_weight.source == WeightRecord.Source.PIMS else "staff",
                f"Weighed ({latest_weight.get_source_display()})",
                latest_weight.recorded_at,
            )
        rows.append(
            FieldRow(
                key=key,
                label=label,
                value=values[key],
                source=source,
                pims_value=differs.get(key),
                pending=rename if key == "name" else None,
            )
        )
    return rows
