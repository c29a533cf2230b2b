"""Merging a PIMS client into a home-delivery customer, and undoing a wrong merge.

A merge happens two ways: by rule, decided by the sync engine for a PIMS client it has never
seen (the PIMS client never gets a row of its own), or confirmed by staff from the review
queue (the PIMS copy the engine made is kept aside, marked merged). Either way the same steps:
the customer takes the PIMS link, keeps its own details and gets only its empty ones filled,
and a PIMS pet of the same name as one of the customer's is that pet. A ``ClientMerge`` row
keeps a snapshot of what was there, so ``client_unmerge`` can put it back exactly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from clinics.audit import audit_log
from records import hooks
from records.fields import (
    ADDRESS_TO_CLIENT,
    PET_FILL_IF_EMPTY,
    client_held_values,
    client_seen,
    patient_seen,
)
from records.matching import normalize_phone, normalize_text
from records.models import Client, ClientMerge, ManualUpdate, MatchRejection, Patient, WeightRecord
from vetsync.pims.records import PimsClient, PimsPatient

RULE_MERGE_ACTION = "sync.client_merged"
STAFF_MERGE_ACTION = "manual_update.match_confirmed"
UNMERGE_ACTION = "client.unmerged"
UNMERGE_COPY_ACTION = "client.unmerged_copy"
PET_UNMERGE_ACTION = "patient.unmerged"


# --- snapshots -----------------------------------------------------------------------------


def client_snapshot(client: Client) -> dict[str, Any]:
    """Every stored field of a client, to restore it exactly (unmerge)."""
    return {
        f.attname: getattr(client, f.attname)
        for f in Client._meta.concrete_fields
        if f.attname not in {"created_at", "updated_at"}
    }


def patient_snapshot(patient: Patient) -> dict[str, Any]:
    return {
        f.attname: getattr(patient, f.attname)
        for f in Patient._meta.concrete_fields
        if f.attname not in {"created_at", "updated_at"}
    }


def merge_snapshot(
    customer: Client,
    pets: Sequence[Patient],
    *,
    candidate: Client | None = None,
    candidate_pets: Sequence[Patient] = (),
    created_patients: Sequence[str] = (),
) -> dict[str, Any]:
    """What ``ClientMerge.snapshot`` keeps: the customer and its pets as they were, and the
    PIMS side: the PIMS copy and its pets (a confirmed match), or the PIMS ids of the pets the
    merge created (a merge by rule: the PIMS client never had a row of its own)."""
    snapshot: dict[str, Any] = {
        "customer": client_snapshot(customer),
        "pets": [patient_snapshot(p) for p in pets],
    }
    if candidate is None:
        snapshot["created_patients"] = list(created_patients)
    else:
        snapshot["candidate"] = client_snapshot(candidate)
        snapshot["candidate_pets"] = [patient_snapshot(p) for p in candidate_pets]
    return snapshot


# --- the steps of every merge --------------------------------------------------------------


def take_pims_link(
    record: Client | Patient,
    *,
    pims_id: str,
    seen: dict[str, Any] | None,
    modified_at: dt.datetime | None,
) -> None:
    """The customer (or its pet) becomes the PIMS record: its id and the PIMS's values."""
    record.pims_id = pims_id
    record.pims_seen = seen
    record.pims_modified_at = modified_at


def customer_fill_empty(
    customer: Client, *, email: str, phone: str, address: Mapping[str, str] | None = None
) -> bool:
    """The customer's own contact details stay; the PIMS fills only what is empty (the
    address, when given, only if the customer has none). Returns whether the phone was filled:
    ``Client.save`` normalises it, a bulk writer must."""
    if not customer.email and email:
        customer.email = email
    filled_phone = not customer.phone and bool(phone)
    if filled_phone:
        customer.phone = phone
    if address and not customer.address_line1:
        for attr, value in address.items():
            setattr(customer, attr, value or getattr(customer, attr))
    return filled_phone


class PetsByName:
    """The customer's pets by normalised name: a PIMS pet of the same name is the same animal."""

    def __init__(self, pets: Iterable[Patient]) -> None:
        self._by_name = {normalize_text(p.name): p for p in pets}

    def twin(self, name: str) -> Patient | None:
        """The customer's pet called ``name``, if any; each pet pairs once."""
        return self._by_name.pop(normalize_text(name), None)


def pet_fill_empty(pet: Patient, source: Patient | PimsPatient) -> None:
    """The customer's pet keeps its details; the PIMS's pet fills only the empty ones."""
    for attr in PET_FILL_IF_EMPTY:
        if not getattr(pet, attr):
            setattr(pet, attr, getattr(source, attr))
    pet.birth_date = pet.birth_date or source.birth_date


def merge_row(
    *,
    clinic_id: int,
    customer_id: int,
    pims_id: str,
    method: str,
    rule: str,
    run_id: int | None,
    snapshot: dict[str, Any],
    evidence: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``ClientMerge`` row's values (by attribute name); ``evidence`` is what the matcher
    said (probability, weights, model version, thresholds)."""
    return {
        "evidence": evidence or {},
        "clinic_id": clinic_id,
        "customer_id": customer_id,
        "pims_id": pims_id,
        "method": method,
        "rule": rule,
        "run_id": run_id,
        "snapshot": snapshot,
    }


def merge_audit(pims_id: str, **evidence: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The before and after of a merge's audit row: the customer gains the PIMS link."""
    return {"pims_id": ""}, {"pims_id": pims_id, **evidence}


def merged_detail(customer: Client, rule: str) -> str:
    return f"Merged into customer {customer.customer_ref} ({customer.full_name}): {rule}."


def linked_pet_detail(pet: Patient) -> str:
    return f"Linked to the customer's pet {pet.name}."


# --- a merge by rule (the sync engine) -----------------------------------------------------


@dataclass
class RuleMerge:
    """A PIMS client merged into a customer in memory; the sync engine writes it in bulk."""

    snapshot: dict[str, Any]
    # Each PIMS pet, with the customer's pet that now holds its link (None: not the customer's).
    pets: list[tuple[PimsPatient, Patient | None]]


def rule_merge(
    customer: Client,
    pims: PimsClient,
    pets: Sequence[Patient],
    *,
    known: Container[str],
    region: str,
) -> RuleMerge:
    """Merge a PIMS client VetSync has never seen into the customer (and its unlinked ``pets``).

    A PIMS pet already ``known`` by its PIMS id stays the pet it is.
    """
    by_name = PetsByName(pets)
    pairs = [
        (patient, None if patient.pims_id in known else by_name.twin(patient.name))
        for patient in pims.patients
    ]
    created = [p.pims_id for p, pet in pairs if pet is None and p.pims_id not in known]
    snapshot = merge_snapshot(customer, pets, created_patients=created)
    take_pims_link(
        customer, pims_id=pims.pims_id, seen=client_seen(pims), modified_at=pims.modified_at
    )
    address = (
        None
        if pims.address.is_empty()
        else {attr: getattr(pims.address, key) for key, attr in ADDRESS_TO_CLIENT.items()}
    )
    if customer_fill_empty(customer, email=pims.email, phone=pims.phone, address=address):
        customer.phone_normalized = normalize_phone(pims.phone, region)
    for patient, pet in pairs:
        if pet is not None:
            take_pims_link(
                pet,
                pims_id=patient.pims_id,
                seen=patient_seen(patient),
                modified_at=patient.modified_at,
            )
            pet_fill_empty(pet, patient)
    return RuleMerge(snapshot, pairs)


# --- a possible match staff confirm (the review queue) -------------------------------------


def possible_match_merge(
    *, update: ManualUpdate, customer: Client, candidate: Client, actor: Any
) -> ClientMerge:
    """Merge the PIMS copy a possible match proposed into the customer, as staff confirmed.

    The caller holds both rows locked and has checked neither is merged. The customer keeps
    its shipping details; it takes the PIMS link and the PIMS pets (a pet of the same name
    becomes one pet). The PIMS copy is kept, marked merged, for unmerge.
    """
    pets = list(customer.patients.all())
    candidate_pets = list(candidate.patients.all())
    snapshot = merge_snapshot(customer, pets, candidate=candidate, candidate_pets=candidate_pets)
    pims_id = candidate.pims_id
    candidate.pims_id = ""
    candidate.merged_into = customer
    candidate.is_active = False
    candidate.save(update_fields=["pims_id", "merged_into", "is_active", "updated_at"])
    take_pims_link(
        customer,
        pims_id=pims_id,
        seen=candidate.pims_seen,
        modified_at=candidate.pims_modified_at,
    )
    customer_fill_empty(customer, email=candidate.email, phone=candidate.phone)
    customer.save()
    newly_deceased = _join_pets(customer, [p for p in pets if not p.pims_id], candidate_pets)
    # The candidate's own pending updates now concern the customer.
    ManualUpdate.objects.filter(
        client=candidate, status=ManualUpdate.Status.PENDING, candidate__isnull=True
    ).update(client=customer)
    ManualUpdate.objects.filter(
        Q(candidate=candidate) | Q(client=customer, candidate__isnull=False),
        status=ManualUpdate.Status.PENDING,
    ).exclude(pk=update.pk).update(
        status=ManualUpdate.Status.SUPERSEDED,
        resolved_at=timezone.now(),
        resolution_note="Settled by another merge.",
    )
    # The PIMS knew this pet had died: its open orders go on hold like after a sync.
    hooks.patients_became_deceased(newly_deceased)
    row = merge_row(
        clinic_id=update.clinic_id,
        customer_id=customer.pk,
        pims_id=pims_id,
        method=ClientMerge.Method.STAFF,
        rule=update.detail[:200],
        run_id=update.run_id,
        snapshot=snapshot,
        evidence=(update.proposed or {}).get("evidence"),
    )
    return ClientMerge.objects.create(
        **row, merged_by=actor if getattr(actor, "pk", None) else None
    )


def _join_pets(
    customer: Client, own: Sequence[Patient], pims_pets: Sequence[Patient]
) -> list[Patient]:
    """The PIMS copy's pets go to the customer; returns the customer's pets newly deceased."""
    by_name = PetsByName(own)
    newly_deceased: list[Patient] = []
    for pet in pims_pets:
        twin = by_name.twin(pet.name)
        if twin is None:
            pet.client = customer
            pet.save(update_fields=["client", "updated_at"])
        elif _join_twin(customer, pet, twin):
            newly_deceased.append(twin)
    return newly_deceased


def _join_twin(customer: Client, pet: Patient, twin: Patient) -> bool:
    """One animal: the customer's pet takes the PIMS link, history and vitals of the PIMS
    copy's pet, which is kept aside. Returns whether the pet is newly known deceased."""
    pims_id, seen, modified_at = pet.pims_id, pet.pims_seen, pet.pims_modified_at
    pet.weights.update(patient=twin)
    ManualUpdate.objects.filter(patient=pet).update(patient=twin, client=customer)
    pet.pims_id = ""
    pet.is_active = False
    pet.client = customer
    pet.save(update_fields=["pims_id", "is_active", "client", "updated_at"])
    take_pims_link(twin, pims_id=pims_id, seen=seen, modified_at=modified_at)
    pet_fill_empty(twin, pet)
    if pet.weight is not None:
        twin.weight, twin.weight_unit = pet.weight, pet.weight_unit
    newly_deceased = pet.is_deceased and not twin.is_deceased
    twin.is_deceased, twin.deceased_on = (
        twin.is_deceased or pet.is_deceased,
        twin.deceased_on or pet.deceased_on,
    )
    twin.save()
    return newly_deceased


# --- unmerge -------------------------------------------------------------------------------


class UnmergeError(Exception):
    """The merge cannot be undone (already undone, or replaced); the message is for staff."""


def client_merge_is_current(*, merge: ClientMerge, customer: Client) -> bool:
    """Still in force: the customer's latest merge, and the customer still holds its PIMS link."""
    latest = (
        ClientMerge.objects.filter(customer_id=customer.pk)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)
        .first()
    )
    return latest == merge.pk and customer.pims_id == merge.pims_id


@dataclass
class _Unmerge:
    """One unmerge in progress: the records it puts back, and where the PIMS's pets go."""

    merge: ClientMerge
    snapshot: dict[str, Any]
    customer: Client
    pets: list[Patient]  # the customer's pets when the unmerge began
    own_pets: dict[int, dict[str, Any]]  # pk -> the customer's own pets in the snapshot
    pims_pets: dict[int, dict[str, Any]]  # pk -> the PIMS copy's pets (a confirmed match)
    seen: dict[str, Any]  # the latest PIMS values seen while merged
    seen_at: dt.datetime | None
    now: dt.datetime
    # pims_id -> (the customer's pet an automatic merge linked, its PIMS values, their time)
    linked: dict[str, tuple[Patient, dict[str, Any], Any]] = field(default_factory=dict)
    moved: list[Patient] = field(default_factory=list)  # pets that go to the PIMS record
    pims_pet_for: dict[int, Patient] = field(default_factory=dict)  # customer pet pk -> PIMS pet

    @classmethod
    def begin(cls, merge: ClientMerge, customer: Client) -> _Unmerge:
        snapshot = merge.snapshot or {}
        return cls(
            merge=merge,
            snapshot=snapshot,
            customer=customer,
            pets=list(customer.patients.order_by("pk")),
            own_pets={row["id"]: row for row in snapshot.get("pets", [])},
            pims_pets={row["id"]: row for row in snapshot.get("candidate_pets", [])},
            seen=dict(customer.pims_seen or {}),
            seen_at=customer.pims_modified_at,
            now=timezone.now(),
        )


def client_unmerge(
    *, merge: ClientMerge, actor: Any, reason: str, request: HttpRequest | None = None
) -> Client:
    """Undo a wrong merge; returns the PIMS client, a record of its own again.

    The customer and the pets it had go back to the merge snapshot. The PIMS record comes back
    with its pets: for a merge staff confirmed, the PIMS copy kept aside is restored from the
    snapshot; for an automatic merge (the PIMS record never had a row of its own) it is made
    from the PIMS's latest values. Either way it keeps the latest PIMS values seen while
    merged, so a change the PIMS made meanwhile is neither lost nor applied silently; pets and
    held changes that came with the PIMS record follow it. The pair is never suggested again.
    """
    reason = reason.strip()
    if not reason:
        raise UnmergeError("Say why the merge was wrong.")
    with transaction.atomic():
        customer = Client.objects.select_for_update().get(pk=merge.customer_id)
        if not client_merge_is_current(merge=merge, customer=customer):
            raise UnmergeError("This merge was already undone, or a later merge replaced it.")
        region = customer.clinic.region
        undo = _Unmerge.begin(merge, customer)
        before = client_snapshot(customer)
        pets_before = {pet.pk: patient_snapshot(pet) for pet in undo.pets}
        # The customer first: it gives the PIMS ids back before anything else takes them.
        _restore_customer(undo)
        pims_client = _restore_pims_client(undo, region)
        _return_pims_pets(undo, pims_client)
        _remake_linked_pets(undo, pims_client)
        for own_pk, pims_pet in undo.pims_pet_for.items():
            # Weighings the PIMS sent belong to the PIMS's pet; staff's stay with the customer's.
            WeightRecord.objects.filter(patient_id=own_pk, source=WeightRecord.Source.PIMS).update(
                patient=pims_pet
            )
        _move_pending_updates(undo, pims_client)
        MatchRejection.objects.get_or_create(
            clinic=customer.clinic,
            customer=customer,
            pims_id=merge.pims_id,
            defaults={"rejected_by": actor if getattr(actor, "pk", None) else None},
        )
        _audit_unmerge(
            undo, pims_client, before, pets_before, actor=actor, request=request, reason=reason
        )
    return pims_client


def _restore(obj: Client | Patient, values: dict[str, Any]) -> None:
    """Put back every stored field a snapshot kept (JSON values read back as field values)."""
    for f in type(obj)._meta.concrete_fields:
        if f.attname in values and not f.primary_key:
            value = values[f.attname]
            setattr(obj, f.attname, None if value is None else f.to_python(value))


def _restore_customer(undo: _Unmerge) -> None:
    """The customer and its own pets as the snapshot kept them; note which pets an automatic
    merge linked to a PIMS pet (they give the link back)."""
    _restore(undo.customer, undo.snapshot["customer"])
    undo.customer.save()
    for pet in undo.pets:
        if pet.pk in undo.own_pets:
            if pet.pims_id and not undo.own_pets[pet.pk].get("pims_id"):
                undo.linked[pet.pims_id] = (pet, dict(pet.pims_seen or {}), pet.pims_modified_at)
            _restore(pet, undo.own_pets[pet.pk])
            pet.save()


def _restore_pims_client(undo: _Unmerge, region: str) -> Client:
    """The PIMS record again: the copy kept aside (a confirmed match), or made anew from the
    PIMS's values (an automatic merge); either way with the latest PIMS values."""
    merge, snapshot = undo.merge, undo.snapshot
    if merge.method == ClientMerge.Method.STAFF and "candidate" in snapshot:
        pims_client = Client.objects.select_for_update().get(pk=snapshot["candidate"]["id"])
        _restore(pims_client, snapshot["candidate"])
    else:
        pims_client = Client(clinic=undo.customer.clinic, country=region)
        _client_from_pims(pims_client, undo.seen, region)
    pims_client.pims_id = merge.pims_id
    pims_client.pims_seen = undo.seen
    pims_client.pims_modified_at = undo.seen_at
    pims_client.merged_into = None
    pims_client.save()
    return pims_client


def _client_from_pims(client: Client, seen: dict[str, Any], region: str) -> None:
    client.first_name = seen.get("first_name") or ""
    client.last_name = seen.get("last_name") or ""
    client.email = seen.get("email") or ""
    client.phone = seen.get("phone") or ""
    for key, attr in ADDRESS_TO_CLIENT.items():
        setattr(client, attr, seen.get(key) or "")
    client.country = client.country or region
    client.is_active = bool(seen.get("active", True))


def _return_pims_pets(undo: _Unmerge, pims_client: Client) -> None:
    """The pets that came with the PIMS record go back to it."""
    for pet in undo.pets:
        if pet.pk in undo.pims_pets:  # a PIMS pet of a confirmed match, kept aside at the merge
            _restore(pet, undo.pims_pets[pet.pk])
            twin = undo.linked.pop(pet.pims_id, None)
            if twin is not None:
                pet.pims_seen, pet.pims_modified_at = twin[1], twin[2]
                undo.pims_pet_for[twin[0].pk] = pet
            pet.save()
            undo.moved.append(pet)
        elif pet.pk not in undo.own_pets and pet.pims_id:  # came from the PIMS with the merge
            pet.client = pims_client
            pet.save(update_fields=["client", "updated_at"])
            undo.moved.append(pet)


def _remake_linked_pets(undo: _Unmerge, pims_client: Client) -> None:
    """An automatic merge linked a customer's pet to a PIMS pet: make the PIMS pet again."""
    for pims_id, (own, pet_seen, pet_seen_at) in undo.linked.items():
        pims_pet = Patient(clinic=undo.customer.clinic, client=pims_client, pims_id=pims_id)
        _patient_from_pims(pims_pet, pet_seen)
        pims_pet.pims_seen, pims_pet.pims_modified_at = pet_seen, pet_seen_at
        pims_pet.save()
        undo.pims_pet_for[own.pk] = pims_pet
        undo.moved.append(pims_pet)


def _patient_from_pims(pet: Patient, seen: dict[str, Any]) -> None:
    pet.name = seen.get("name") or ""
    for attr in PET_FILL_IF_EMPTY:
        setattr(pet, attr, seen.get(attr) or "")
    birth = seen.get("birth_date")
    pet.birth_date = Patient._meta.get_field("birth_date").to_python(birth) if birth else None
    weight = seen.get("weight")
    pet.weight = Patient._meta.get_field("weight").to_python(weight) if weight else None
    pet.weight_unit = seen.get("weight_unit") or pet.weight_unit
    pet.is_deceased = bool(seen.get("deceased"))
    deceased_on = seen.get("deceased_on") if pet.is_deceased else None
    pet.deceased_on = (
        Patient._meta.get_field("deceased_on").to_python(deceased_on) if deceased_on else None
    )
    pet.is_active = bool(seen.get("active", True))


def _move_pending_updates(undo: _Unmerge, pims_client: Client) -> None:
    """Changes the PIMS made while merged, still waiting for staff, follow the PIMS record."""
    moved_ids = {pet.pk for pet in undo.moved}
    for update in ManualUpdate.objects.select_for_update().filter(
        client=undo.customer, status=ManualUpdate.Status.PENDING, candidate__isnull=True
    ):
        if update.patient_id is None:
            update.client = pims_client
            _refresh_pending(update, client_held_values(pims_client, update.kind), undo.now)
        elif update.patient_id in undo.pims_pet_for or update.patient_id in moved_ids:
            target = undo.pims_pet_for.get(update.patient_id) or next(
                p for p in undo.moved if p.pk == update.patient_id
            )
            update.client, update.patient = pims_client, target
            _refresh_pending(update, {"name": target.name}, undo.now)


def _refresh_pending(update: ManualUpdate, current: dict[str, Any], now: Any) -> None:
    """A held PIMS change now compared with the record it belongs to; settled if they agree."""
    update.current = current
    update.updated_at = now
    fields = ["client", "patient", "current", "updated_at"]
    if current == update.proposed:
        update.status = ManualUpdate.Status.SUPERSEDED
        update.resolved_at = now
        update.resolution_note = "Unmerged: the PIMS record already has this value."
        fields += ["status", "resolved_at", "resolution_note"]
    update.save(update_fields=fields)


def _audit_unmerge(
    undo: _Unmerge,
    pims_client: Client,
    before: dict[str, Any],
    pets_before: dict[int, dict[str, Any]],
    *,
    actor: Any,
    request: HttpRequest | None,
    reason: str,
) -> None:
    """One audit row for the customer, one for the PIMS record, one per pet that changed."""
    customer, merge = undo.customer, undo.merge
    after = client_snapshot(customer)
    audit_log(
        action=UNMERGE_ACTION,
        actor=actor,
        request=request,
        clinic=customer.clinic,
        obj=customer,
        before={k: v for k, v in before.items() if after.get(k) != v},
        after={
            **{k: v for k, v in after.items() if before.get(k) != v},
            "merge": merge.pk,
            "pims_client": pims_client.pk,
            "reason": reason,
        },
    )
    audit_log(
        action=UNMERGE_COPY_ACTION,
        actor=actor,
        request=request,
        clinic=customer.clinic,
        obj=pims_client,
        after={"pims_id": merge.pims_id, "merge": merge.pk, "customer": customer.pk},
    )
    for pet in {p.pk: p for p in [*undo.pets, *undo.moved]}.values():
        old = pets_before.get(pet.pk, {})
        new = patient_snapshot(pet)
        changed = {k: v for k, v in new.items() if old.get(k) != v}
        if changed:
            audit_log(
                action=PET_UNMERGE_ACTION,
                actor=actor,
                request=request,
                clinic=customer.clinic,
                obj=pet,
                before={k: old.get(k) for k in changed} if old else None,
                after={**changed, "merge": merge.pk},
            )
