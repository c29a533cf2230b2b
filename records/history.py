"""Where a client's or pet's values came from, what the PIMS says now, and their timeline.

Everything here is read from what the writes already leave behind: ``SyncRecordOutcome`` rows
(a record copied or merged by a run), ``AuditEvent`` rows (every change by sync, staff, the
store import or Pet Owner Care, with its before/after values) and ``ClientMerge`` snapshots.
Nothing is stored twice, and a change nobody logged cannot be shown: the services log them all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Q

from clinics.models import AuditEvent
from records.matching import normalize_phone
from records.models import (
    Client,
    ClientMerge,
    ManualUpdate,
    Outcome,
    Patient,
    SyncRecordOutcome,
    WeightRecord,
    WeightUnit,
)

TIMELINE_LIMIT = 100
UNMERGE_ACTION = "client.unmerged"
CARE_PREFIX = "care."

# What each kind of change is called on the page.
KIND_LABELS = {
    "pims": "PIMS",
    "staff": "Clinic staff",
    "care": "Pet Owner Care",
    "store": "Home-delivery store",
    "system": "VetSync",
}

CLIENT_ADDRESS_ATTRS = (
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postcode",
    "country",
)
# Client.pims_seen keys for the address attributes.
PIMS_ADDRESS_KEYS = {
    "address_line1": "line1",
    "address_line2": "line2",
    "city": "city",
    "state": "state",
    "postcode": "postcode",
    "country": "country",
}
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
# Keys in audit ``after`` dicts that stand for more than one attribute.
EVENT_KEY_ATTRS = {
    "deceased": ("is_deceased", "deceased_on"),
    "weight": ("weight", "weight_unit"),
    "name": ("name",),
}
ATTR_LABELS = {
    "first_name": "First name",
    "last_name": "Last name",
    "email": "Email",
    "phone": "Phone",
    "address_line1": "Address line 1",
    "address_line2": "Address line 2",
    "city": "City",
    "state": "State",
    "postcode": "Postcode",
    "country": "Country",
    "name": "Name",
    "species": "Species",
    "breed": "Breed",
    "sex": "Sex",
    "birth_date": "Birth date",
    "weight": "Weight",
    "weight_unit": "Weight unit",
    "deceased": "Deceased",
    "is_deceased": "Deceased",
    "deceased_on": "Deceased on",
    "microchip": "Microchip",
    "is_active": "Active",
    "pims_id": "PIMS id",
    "customer_ref": "Store ref",
}
# Keys of ``after`` that are bookkeeping, not values of the record.
_NOT_FIELDS = {
    "run",
    "manual_update",
    "edited",
    "merge",
    "reason",
    "rule",
    "merged_client",
    "pims_client",
    "customer",
    "id",
    "clinic_id",
    "client_id",
    "pims_seen",
    "pims_modified_at",
    "phone_normalized",
    "merged_into_id",
}
UNMERGE_ACTIONS = {UNMERGE_ACTION, "client.unmerged_copy", "patient.unmerged"}


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


@dataclass
class TimelineEntry:
    at: dt.datetime
    kind: str
    title: str
    by: str = ""
    changes: list[tuple[str, str, str]] = field(default_factory=list)
    note: str = ""
    order: int = 0

    @property
    def kind_label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)


# --- reading what happened -----------------------------------------------------------------


def record_events(obj: Client | Patient, limit: int = TIMELINE_LIMIT) -> list[AuditEvent]:
    """The newest audit events about one client or pet, oldest first (one query)."""
    events = AuditEvent.objects.filter(
        object_type=obj._meta.label_lower, object_id=str(obj.pk)
    ).order_by("-created_at", "-id")[:limit]
    return sorted(events, key=lambda e: (e.created_at, e.pk))


def record_outcomes(obj: Client | Patient, limit: int = TIMELINE_LIMIT) -> list[SyncRecordOutcome]:
    """What sync runs did to one client or pet (copied, merged, updated, held), oldest first."""
    shown = [Outcome.CREATED, Outcome.MERGED, Outcome.UPDATED, Outcome.MANUAL_UPDATE]
    if isinstance(obj, Client):
        rows = SyncRecordOutcome.objects.filter(client=obj, kind=SyncRecordOutcome.Kind.CLIENT)
        shown.append(Outcome.POSSIBLE_MATCH)
    else:
        rows = SyncRecordOutcome.objects.filter(patient=obj, kind=SyncRecordOutcome.Kind.PATIENT)
    # An "unchanged" outcome with a note is a PIMS change the policy did not apply (a phone,
    # a breed: "PIMS differs") or an out-of-date record ignored: part of the story too.
    noted = Q(outcome=Outcome.UNCHANGED) & ~Q(detail="")
    found = rows.filter(Q(outcome__in=shown) | noted).select_related("run").order_by("-id")[:limit]
    return sorted(found, key=lambda o: (o.run.created_at, o.pk))


def event_kind(event: AuditEvent) -> str:
    action = event.action
    if action.startswith("sync.") or event.actor_label == "sync":
        return "pims"
    if action.startswith(CARE_PREFIX):
        return "care"
    if action.startswith("customer."):
        return "store"
    if event.actor_id is not None:
        return "staff"
    return "system"


def _changed_attrs(event: AuditEvent) -> list[str]:
    """The record's attributes an audit event set (from its ``after`` dict)."""
    after = event.after if isinstance(event.after, dict) else {}
    attrs: list[str] = []
    for key in after:
        if key in _NOT_FIELDS:
            continue
        attrs.extend(EVENT_KEY_ATTRS.get(key, (key,)))
    return attrs


def is_care_change(event: AuditEvent) -> bool:
    return event.action.startswith(CARE_PREFIX) and bool(_changed_attrs(event))


def event_title(event: AuditEvent) -> str:
    action, after = event.action, event.after if isinstance(event.after, dict) else {}
    kind = action.rsplit(".", 1)[-1]
    kind_label = dict(ManualUpdate.Kind.choices).get(kind, kind.replace("_", " ")).lower()
    if action.startswith(CARE_PREFIX):
        if is_care_change(event):
            return "Pet Owner Care change at the owner's request"
        return "Looked up by Pet Owner Care"
    if action in {"sync.client_updated", "sync.patient_updated"}:
        return "Changed in the PIMS, applied automatically"
    if action == "sync.client_merged":
        return f"Merged automatically with PIMS record {after.get('pims_id', '')}"
    if action.startswith("manual_update.accepted."):
        edited = " (edited before accepting)" if after.get("edited") else ""
        return f"Staff accepted the PIMS's {kind_label}{edited}"
    if action.startswith("manual_update.dismissed."):
        return f"Staff kept the pharmacy's {kind_label}"
    if action == "patient.renamed":
        source = " (the PIMS's new name)" if after.get("manual_update") else ""
        why = f": {after['reason']}" if after.get("reason") else ""
        return f"Renamed by staff, same pet attested{source}{why}"
    if action == "manual_update.match_confirmed":
        return f"Staff confirmed the merge with PIMS record {after.get('pims_id', '')}"
    if action == "manual_update.match_rejected":
        return f"Staff kept this customer apart from PIMS record {after.get('pims_id', '')}"
    if action == UNMERGE_ACTION:
        before = event.before if isinstance(event.before, dict) else {}
        return f"Unmerged from PIMS record {before.get('pims_id', '')}"
    if action == "client.unmerged_copy":
        return "A PIMS record of its own again, after an unmerge"
    if action == "patient.unmerged":
        return "Separated by the unmerge of its owner"
    if action == "customer.imported_update":
        return "Updated by the home-delivery store import"
    return action.replace("_", " ").replace(".", ": ")


def _show(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def event_changes(event: AuditEvent) -> list[tuple[str, str, str]]:
    """(label, before, after) for each value an event changed."""
    before = event.before if isinstance(event.before, dict) else {}
    after = event.after if isinstance(event.after, dict) else {}
    if event.action.startswith("manual_update.dismissed."):
        return [
            (ATTR_LABELS.get(k, k), _show(before.get(k)), f"PIMS: {_show(v)}")
            for k, v in (after.get("pims") or {}).items()
        ]
    rows = []
    for key, value in after.items():
        if key in _NOT_FIELDS or key in {"kept", "pims"}:
            continue
        old = before.get(key)
        if old == value:
            continue
        rows.append(
            (ATTR_LABELS.get(key, key.replace("_", " ").capitalize()), _show(old), _show(value))
        )
    return rows


def _outcome_title(outcome: SyncRecordOutcome) -> str:
    what = "client" if outcome.kind == SyncRecordOutcome.Kind.CLIENT else "pet"
    return {
        Outcome.CREATED: f"Copied from the PIMS (new {what}, PIMS id {outcome.pims_id})",
        Outcome.MERGED: f"Linked to PIMS record {outcome.pims_id}",
        Outcome.UPDATED: "Changed in the PIMS",
        Outcome.MANUAL_UPDATE: "Changed in the PIMS, held for staff",
        Outcome.POSSIBLE_MATCH: "Copied from the PIMS as a possible match of a customer",
        Outcome.UNCHANGED: "Changed in the PIMS, not applied",
    }.get(Outcome(outcome.outcome), outcome.get_outcome_display())


def timeline(
    obj: Client | Patient,
    *,
    events: Sequence[AuditEvent],
    outcomes: Sequence[SyncRecordOutcome],
) -> list[TimelineEntry]:
    """Every change to one record, newest first: sync, staff, store and Pet Owner Care."""
    entries: list[TimelineEntry] = []
    # A run's audit event says what it changed, value by value; its "updated" outcome would
    # say the same again.
    audited_runs = {
        e.after.get("run") for e in events if isinstance(e.after, dict) and e.after.get("run")
    }
    for outcome in outcomes:
        if outcome.outcome == Outcome.UPDATED and outcome.run_id in audited_runs:
            continue
        entries.append(
            TimelineEntry(
                at=outcome.run.created_at,
                kind="pims",
                title=_outcome_title(outcome),
                by=f"sync run {outcome.run_id}",
                note=outcome.detail,
                order=0,
            )
        )
    for event in events:
        entries.append(
            TimelineEntry(
                at=event.created_at,
                kind=event_kind(event),
                title=event_title(event),
                by=_event_by(event),
                changes=event_changes(event),
                note=_event_note(event),
                order=1,
            )
        )
    if isinstance(obj, Client) and obj.customer_ref:
        entries.append(
            TimelineEntry(
                at=obj.created_at,
                kind="store",
                title=f"Signed up for home delivery (store customer {obj.customer_ref})",
                order=-1,
            )
        )
    elif isinstance(obj, Patient) and not outcomes and not obj.pims_id:
        entries.append(
            TimelineEntry(
                at=obj.created_at, kind="store", title="Added with a home-delivery signup"
            )
        )
    entries.sort(key=lambda e: (e.at, e.order), reverse=True)
    return entries


def _event_by(event: AuditEvent) -> str:
    after = event.after if isinstance(event.after, dict) else {}
    if event.actor_label == "sync" and after.get("run"):
        return f"sync run {after['run']}"
    return event.actor_label


def _event_note(event: AuditEvent) -> str:
    after = event.after if isinstance(event.after, dict) else {}
    parts = []
    if after.get("reason"):
        parts.append(f"Reason: {after['reason']}")
    if after.get("rule"):
        parts.append(f"Evidence: {after['rule']}")
    return " ".join(parts)


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
        label = "PIMS change, applied automatically"
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
    return Source(kind, label, event.created_at, event.actor_label)


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
    origin = _origin_from_outcomes(outcomes)
    if origin is None:
        signed_up = obj.customer_ref if isinstance(obj, Client) else not obj.pims_id
        if signed_up:
            origin = Source("store", "Home-delivery signup", obj.created_at)
        elif isinstance(obj, Patient):
            origin = Source("pims", "Copied from the PIMS", obj.created_at, "sync")
    sources: dict[str, Source] = dict.fromkeys(attrs, origin) if origin else {}
    # What a merge filled in (values the customer did not have) came from the PIMS.
    timed: list[tuple[dt.datetime, int, list[str], Source]] = []
    for merge in merges:
        filled = _filled_by_merge(obj, merge)
        if filled:
            how = (
                "at an automatic merge"
                if merge.method == ClientMerge.Method.RULE
                else ("at a merge confirmed by staff")
            )
            timed.append(
                (
                    merge.created_at,
                    0,
                    filled,
                    Source("pims", f"PIMS, filled in {how}", merge.created_at),
                )
            )
    for outcome in outcomes:
        if outcome.outcome == Outcome.MERGED and isinstance(obj, Patient):
            linked = ["weight", "weight_unit", "is_deceased", "deceased_on"]
            timed.append(
                (
                    outcome.run.created_at,
                    0,
                    linked,
                    Source("pims", "PIMS, at the merge", outcome.run.created_at, "sync"),
                )
            )
    for event in events:
        changed = _changed_attrs(event)
        if event.action == "client.unmerged_copy":
            changed = attrs
        source = _event_source(event)
        if changed and source is not None:
            timed.append((event.created_at, 1, changed, source))
    for _, _, changed, source in sorted(timed, key=lambda t: (t[0], t[1])):
        for attr in changed:
            if attr in sources or attr in attrs:
                sources[attr] = source
    return sources


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
                for attr in ("species", "breed", "sex", "birth_date")
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
    differs: dict[str, str] = {}
    pims_name = (seen.get("first_name", ""), seen.get("last_name", ""))
    if "first_name" in seen and pims_name != (client.first_name, client.last_name):
        differs["name"] = " ".join(part for part in pims_name if part)
    if "email" in seen and (seen.get("email") or "").lower() != client.email.lower():
        differs["email"] = seen.get("email") or ""
    if "phone" in seen:
        region = client.country or "US"
        if normalize_phone(seen.get("phone") or "", region) != client.phone_normalized:
            differs["phone"] = seen.get("phone") or ""
    if "line1" in seen:
        pims_address = {attr: seen.get(key) or "" for attr, key in PIMS_ADDRESS_KEYS.items()}
        ours = {attr: getattr(client, attr) for attr in CLIENT_ADDRESS_ATTRS}
        if not pims_address["country"]:  # a PIMS without countries: the clinic's is assumed
            pims_address["country"] = ours["country"]
        if _norm(pims_address) != _norm(ours):
            differs["address"] = _address(pims_address)
    return differs


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


def name_history(
    patient: Patient, events: Sequence[AuditEvent]
) -> list[tuple[dt.datetime, str, str, str, str]]:
    """(when, old name, new name, who, why) for each rename of a pet, oldest first."""
    renames = []
    for event in events:
        before = event.before if isinstance(event.before, dict) else {}
        after = event.after if isinstance(event.after, dict) else {}
        if "name" in after and before.get("name") and before.get("name") != after["name"]:
            renames.append(
                (
                    event.created_at,
                    before["name"],
                    after["name"],
                    event.actor_label,
                    str(after.get("reason") or ""),
                )
            )
    return renames


# --- the weight chart ----------------------------------------------------------------------

CHART_WIDTH, CHART_HEIGHT = 640, 220
_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, _PAD_BOTTOM = 48, 16, 16, 32
_LB_PER_KG = Decimal("2.20462")


@dataclass
class ChartPoint:
    x: float
    y: float
    label: str


@dataclass
class WeightChart:
    """An SVG line chart drawn on the server: coordinates only, no script, no style."""

    width: int
    height: int
    unit: str
    points: list[ChartPoint]
    polyline: str
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str, str]]  # x, label, text-anchor
    left: int = _PAD_LEFT
    right: int = CHART_WIDTH - _PAD_RIGHT
    top: int = _PAD_TOP
    bottom: int = CHART_HEIGHT - _PAD_BOTTOM


def _in_unit(weight: Decimal, unit: str, wanted: str) -> Decimal:
    if unit == wanted:
        return weight
    if wanted == WeightUnit.LB:
        return weight * _LB_PER_KG
    return weight / _LB_PER_KG


def weight_chart(weights: Sequence[WeightRecord], unit: str) -> WeightChart | None:
    """Weighings (oldest first) as chart coordinates, in the pet's current unit."""
    if not weights:
        return None
    values = []
    for w in weights:
        try:
            values.append((w.recorded_at, float(_in_unit(Decimal(w.weight), w.unit, unit))))
        except (InvalidOperation, TypeError):
            continue
    if not values:
        return None
    low = min(v for _, v in values)
    high = max(v for _, v in values)
    span = high - low
    low, high = (low - 1, high + 1) if span == 0 else (low - span * 0.1, high + span * 0.1)
    low = max(low, 0.0)
    start = values[0][0]
    end = values[-1][0]
    seconds = (end - start).total_seconds() or 1.0
    left, right = _PAD_LEFT, CHART_WIDTH - _PAD_RIGHT
    top, bottom = _PAD_TOP, CHART_HEIGHT - _PAD_BOTTOM

    def x_of(when: dt.datetime) -> float:
        if len(values) == 1:
            return (left + right) / 2
        return round(left + (right - left) * (when - start).total_seconds() / seconds, 1)

    def y_of(value: float) -> float:
        return round(bottom - (bottom - top) * (value - low) / (high - low), 1)

    points = [
        ChartPoint(x_of(when), y_of(value), f"{value:.1f} {unit} on {when:%-d %b %Y}")
        for when, value in values
    ]
    y_ticks = [
        (y_of(low + (high - low) * i / 4), f"{low + (high - low) * i / 4:.1f}") for i in range(5)
    ]
    if len(values) > 1:
        x_ticks = [(points[0].x, f"{start:%-d %b %Y}", "start")]
        x_ticks.append((points[-1].x, f"{end:%-d %b %Y}", "end"))
    else:
        x_ticks = [(points[0].x, f"{start:%-d %b %Y}", "middle")]
    return WeightChart(
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        unit=unit,
        points=points,
        polyline=" ".join(f"{p.x},{p.y}" for p in points),
        y_ticks=y_ticks,
        x_ticks=x_ticks,
    )
