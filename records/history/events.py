"""What happened to a client or pet: the audit events and sync outcomes about it, read back
as its timeline and its pet's name history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q

from clinics.display import event_actor
from clinics.models import AuditEvent
from records.matching import format_percent
from records.merging import (
    PET_UNMERGE_ACTION,
    RULE_MERGE_ACTION,
    STAFF_MERGE_ACTION,
    UNMERGE_ACTION,
    UNMERGE_COPY_ACTION,
)
from records.models import Client, ManualUpdate, Outcome, Patient, SyncRecordOutcome

TIMELINE_LIMIT = 100
CARE_PREFIX = "care."

# What each kind of change is called on the page.
KIND_LABELS = {
    "pims": "PIMS",
    "staff": "Clinic staff",
    "care": "Pet Owner Care",
    "store": "Home-delivery store",
    "system": "VetSync",
}

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
    # An automatic merge's evidence: said in its note, not as values the record changed.
    "probability",
    "model",
    "thresholds",
}
UNMERGE_ACTIONS = {UNMERGE_ACTION, UNMERGE_COPY_ACTION, PET_UNMERGE_ACTION}


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
    events = (
        AuditEvent.objects.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk))
        .select_related("actor")
        .order_by("-created_at", "-id")[:limit]
    )
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


def changed_attrs(event: AuditEvent) -> list[str]:
    """The record's attributes an audit event set (from its ``after`` dict)."""
    after = event.after if isinstance(event.after, dict) else {}
    attrs: list[str] = []
    for key in after:
        if key in _NOT_FIELDS:
            continue
        attrs.extend(EVENT_KEY_ATTRS.get(key, (key,)))
    return attrs


def is_care_change(event: AuditEvent) -> bool:
    return event.action.startswith(CARE_PREFIX) and bool(changed_attrs(event))


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
    if action == RULE_MERGE_ACTION:
        return f"Merged automatically with PIMS record {after.get('pims_id', '')}"
    if action.startswith("manual_update.accepted."):
        edited = " (edited before accepting)" if after.get("edited") else ""
        return f"Staff accepted the PIMS's {kind_label}{edited}"
    if action.startswith("manual_update.dismissed."):
        return f"Staff kept the pharmacy's {kind_label}"
    if action == "patient.renamed":
        source = " (the PIMS's new name)" if after.get("manual_update") else ""
        why = f": {_show(after['reason'])}" if after.get("reason") else ""
        return f"Renamed by staff, same pet attested{source}{why}"
    if action == STAFF_MERGE_ACTION:
        return f"Staff confirmed the merge with PIMS record {after.get('pims_id', '')}"
    if action == "manual_update.match_rejected":
        return f"Staff kept this customer apart from PIMS record {after.get('pims_id', '')}"
    if action == UNMERGE_ACTION:
        before = event.before if isinstance(event.before, dict) else {}
        return f"Unmerged from PIMS record {before.get('pims_id', '')}"
    if action == UNMERGE_COPY_ACTION:
        return "A PIMS record of its own again, after an unmerge"
    if action == PET_UNMERGE_ACTION:
        return "Separated by the unmerge of its owner"
    if action == "customer.imported_update":
        return "Updated by the home-delivery store import"
    return action.replace("_", " ").replace(".", ": ")


def _show(value: Any) -> str:
    """A value in words: never a Python dict or list as ``repr`` writes it."""
    if value is None or value == "":
        return "—"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, dict):
        return "; ".join(f"{_label(str(k))}: {_show(v)}" for k, v in value.items()) or "—"
    if isinstance(value, list | tuple):
        return ", ".join(_show(v) for v in value) or "—"
    return str(value)


def _label(key: str) -> str:
    return ATTR_LABELS.get(key, key.replace("_", " ").capitalize())


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
        rows.append((_label(key), _show(old), _show(value)))
    return rows


def _copied_without_outcome(obj: Client | Patient, outcomes: Sequence[SyncRecordOutcome]) -> bool:
    """A record only a sync can have made (a PIMS id, no home-delivery customer behind it)
    whose "copied" outcome is gone: retention removed it, or it is past the timeline's limit."""
    client = obj if isinstance(obj, Client) else obj.client
    copied = {Outcome.CREATED, Outcome.POSSIBLE_MATCH}
    return (
        bool(obj.pims_id)
        and not client.customer_ref
        and not any(o.outcome in copied for o in outcomes)
    )


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
    visits: dict[Any, _CareVisit] = {}
    for event in events:
        if _is_care_lookup(event):
            visit = visits.get(event.actor_id)
            if visit is not None and event.created_at - visit.last <= CARE_VISIT:
                visit.add(event)
                continue
            visits[event.actor_id] = visit = _CareVisit(_entry(event), event.created_at)
            entries.append(visit.entry)
            continue
        entries.append(_entry(event))
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
    elif _copied_without_outcome(obj, outcomes):
        what = "client" if isinstance(obj, Client) else "pet"
        title = f"Copied from the PIMS (new {what}, PIMS id {obj.pims_id})"
        entries.append(TimelineEntry(at=obj.created_at, kind="pims", title=title))
    entries.sort(key=lambda e: (e.at, e.order), reverse=True)
    return entries


# Pet Owner Care's log keeps every view; the clinic's timeline shows one line per Care visit:
# one Care user's views of the record with no gap longer than this.
CARE_VISIT = dt.timedelta(minutes=30)


def _is_care_lookup(event: AuditEvent) -> bool:
    return event.action.startswith(CARE_PREFIX) and not is_care_change(event)


def _entry(event: AuditEvent) -> TimelineEntry:
    return TimelineEntry(
        at=event.created_at,
        kind=event_kind(event),
        title=event_title(event),
        by=_event_by(event),
        changes=event_changes(event),
        note=_event_note(event),
        order=1,
    )


@dataclass
class _CareVisit:
    entry: TimelineEntry
    last: dt.datetime
    views: int = 1

    def add(self, event: AuditEvent) -> None:
        self.views += 1
        self.last = event.created_at
        minutes = max(1, round((self.last - self.entry.at).total_seconds() / 60))
        self.entry.note = f"{self.views} views over {minutes} minute{'s' if minutes != 1 else ''}"


def _event_by(event: AuditEvent) -> str:
    after = event.after if isinstance(event.after, dict) else {}
    if event.actor_label == "sync" and after.get("run"):
        return f"sync run {after['run']}"
    return event_actor(event)


def _event_note(event: AuditEvent) -> str:
    after = event.after if isinstance(event.after, dict) else {}
    parts = []
    if after.get("reason"):
        parts.append(f"Reason: {_show(after['reason'])}")
    if after.get("rule"):
        parts.append(f"Evidence: {_show(after['rule'])}")
    if "probability" in after:
        parts.append(_match_note(after))
    if len(parts) < 2:
        return "".join(parts)
    return " ".join(part if part.endswith((".", "?", "!")) else f"{part}." for part in parts)


def _match_note(after: dict[str, Any]) -> str:
    """What the matcher said of an automatic merge, its percentages as the review queue
    writes them: "Match probability 99.63 %, model fs-1; thresholds: merge at 99.90 %, …"."""
    note = f"Match probability {_percent(after['probability'])}"
    if after.get("model"):
        note += f", model {_show(after['model'])}"
    thresholds = after.get("thresholds")
    if isinstance(thresholds, dict) and thresholds:
        at = ", ".join(f"{_show(k).lower()} at {_percent(v)}" for k, v in thresholds.items())
        note += f"; thresholds: {at}"
    elif thresholds:
        note += f"; thresholds: {_show(thresholds)}"
    return f"{note}."


def _percent(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format_percent(value)
    return _show(value)


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
                    event_actor(event),
                    str(after.get("reason") or ""),
                )
            )
    return renames
