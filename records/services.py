"""Business operations on clients and patients. Each owns its transaction and audit row."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpRequest
from django.utils import timezone

from clinics.audit import audit_log
from clinics.models import Clinic
from records.matching import normalize_phone, normalize_text
from records.models import Client, ClientMerge, ManualUpdate, MatchRejection, Patient
from records.sync import ADDRESS_TO_CLIENT, client_snapshot, patient_snapshot


def clinic_record_counts(*, clinic: Clinic) -> dict[str, int]:
    """The record counts on a clinic's dashboard, in two queries."""
    clients = Client.objects.for_clinic(clinic).aggregate(
        total=Count("id"), home_delivery=Count("id", filter=~Q(customer_ref=""))
    )
    patients = Patient.objects.for_clinic(clinic).aggregate(
        total=Count("id"), deceased=Count("id", filter=Q(is_deceased=True))
    )
    return {
        "clients": clients["total"],
        "home_delivery_customers": clients["home_delivery"],
        "patients": patients["total"],
        "deceased_patients": patients["deceased"],
    }


# --- manual updates ------------------------------------------------------------------------


class ManualUpdateError(Exception):
    """The action cannot be done (already resolved, bad values); the message is for staff."""


def _pending(update: ManualUpdate) -> ManualUpdate:
    locked = ManualUpdate.objects.select_for_update().get(pk=update.pk)
    if locked.status != ManualUpdate.Status.PENDING:
        raise ManualUpdateError(
            f"This update was already handled ({locked.get_status_display().lower()})."
        )
    return locked


def _resolve(update: ManualUpdate, *, status: str, actor: Any, note: str = "") -> ManualUpdate:
    update.status = status
    update.resolved_at = timezone.now()
    update.resolved_by = actor if getattr(actor, "pk", None) else None
    update.resolution_note = note[:500]
    update.save(update_fields=["status", "resolved_at", "resolved_by", "resolution_note"])
    return update


def manual_update_accept(
    *,
    update: ManualUpdate,
    actor: Any,
    values: dict[str, str] | None = None,
    request: HttpRequest | None = None,
) -> ManualUpdate:
    """Apply a held client name, client address or pet name (as proposed, or as edited)."""
    with transaction.atomic():
        update = _pending(update)
        if update.kind == ManualUpdate.Kind.POSSIBLE_MATCH:
            raise ManualUpdateError("A possible match is confirmed or rejected, not accepted.")
        chosen = {**update.proposed, **(values or {})}
        edited = values is not None and any(
            update.proposed.get(k) != v for k, v in (values or {}).items()
        )
        if update.kind == ManualUpdate.Kind.PET_NAME:
            assert update.patient is not None
            target: Client | Patient = update.patient
            fields = {"name": chosen.get("name", "").strip()}
            if not fields["name"]:
                raise ManualUpdateError("The pet's name cannot be empty.")
        elif update.kind == ManualUpdate.Kind.CLIENT_NAME:
            target = update.client
            fields = {
                "first_name": chosen.get("first_name", "").strip(),
                "last_name": chosen.get("last_name", "").strip(),
            }
            if not fields["first_name"] and not fields["last_name"]:
                raise ManualUpdateError("A shipping name needs a first or a last name.")
        else:
            target = update.client
            fields = {
                attr: (chosen.get(key) or "").strip() for key, attr in ADDRESS_TO_CLIENT.items()
            }
            if not fields["address_line1"] or not fields["postcode"]:
                raise ManualUpdateError("A shipping address needs at least line 1 and a postcode.")
        before = {attr: getattr(target, attr) for attr in fields}
        for attr, value in fields.items():
            setattr(target, attr, value)
        target.full_clean(exclude=["client", "clinic"])
        target.save(update_fields=[*fields, "updated_at"])
        _resolve(
            update,
            status=ManualUpdate.Status.ACCEPTED,
            actor=actor,
            note="Edited before accepting." if edited else "",
        )
        audit_log(
            action=f"manual_update.accepted.{update.kind}",
            actor=actor,
            request=request,
            clinic=update.clinic,
            obj=target,
            before=before,
            after={**fields, "manual_update": update.pk, "edited": edited},
        )
    return update


def manual_update_dismiss(
    *, update: ManualUpdate, actor: Any, reason: str, request: HttpRequest | None = None
) -> ManualUpdate:
    """Keep the pharmacy's value; the reason stays on record."""
    reason = reason.strip()
    if not reason:
        raise ManualUpdateError("Say why the update is dismissed.")
    with transaction.atomic():
        update = _pending(update)
        if update.kind == ManualUpdate.Kind.POSSIBLE_MATCH:
            raise ManualUpdateError("A possible match is confirmed or rejected, not dismissed.")
        _resolve(update, status=ManualUpdate.Status.DISMISSED, actor=actor, note=reason)
        audit_log(
            action=f"manual_update.dismissed.{update.kind}",
            actor=actor,
            request=request,
            clinic=update.clinic,
            obj=update.patient or update.client,
            before=update.current,
            after={"kept": update.current, "pims": update.proposed, "reason": reason},
        )
    return update


def possible_match_reject(
    *, update: ManualUpdate, actor: Any, reason: str = "", request: HttpRequest | None = None
) -> ManualUpdate:
    """Keep the customer and the PIMS client apart, and never suggest the pair again."""
    with transaction.atomic():
        update = _pending(update)
        if update.kind != ManualUpdate.Kind.POSSIBLE_MATCH or update.candidate is None:
            raise ManualUpdateError("Only a possible match can be rejected.")
        MatchRejection.objects.get_or_create(
            clinic=update.clinic,
            customer=update.client,
            pims_id=update.candidate.pims_id,
            defaults={"rejected_by": actor if getattr(actor, "pk", None) else None},
        )
        _resolve(update, status=ManualUpdate.Status.REJECTED, actor=actor, note=reason.strip())
        audit_log(
            action="manual_update.match_rejected",
            actor=actor,
            request=request,
            clinic=update.clinic,
            obj=update.client,
            after={"pims_id": update.candidate.pims_id, "candidate": update.candidate.pk},
        )
    return update


def possible_match_confirm(
    *, update: ManualUpdate, actor: Any, request: HttpRequest | None = None
) -> ManualUpdate:
    """Merge the PIMS client into the home-delivery customer, as staff confirmed.

    The customer keeps its shipping details; it takes the PIMS link and the PIMS pets (a pet
    of the same name becomes one pet). The PIMS copy is kept, marked merged, for unmerge.
    """
    with transaction.atomic():
        update = _pending(update)
        if update.kind != ManualUpdate.Kind.POSSIBLE_MATCH or update.candidate is None:
            raise ManualUpdateError("Only a possible match can be confirmed.")
        customer = Client.objects.select_for_update().get(pk=update.client_id)
        candidate = Client.objects.select_for_update().get(pk=update.candidate.pk)
        if customer.pims_id or customer.merged_into_id:
            raise ManualUpdateError(
                f"{customer.full_name} is already linked to a PIMS record; nothing is merged twice."
            )
        if not candidate.pims_id or candidate.merged_into_id:
            raise ManualUpdateError("The PIMS record was already merged or removed.")
        pets = list(customer.patients.all())
        candidate_pets = list(candidate.patients.all())
        snapshot = {
            "customer": client_snapshot(customer),
            "candidate": client_snapshot(candidate),
            "pets": [patient_snapshot(p) for p in pets],
            "candidate_pets": [patient_snapshot(p) for p in candidate_pets],
        }
        pims_id = candidate.pims_id
        candidate.pims_id = ""
        candidate.merged_into = customer
        candidate.is_active = False
        candidate.save(update_fields=["pims_id", "merged_into", "is_active", "updated_at"])
        customer.pims_id = pims_id
        customer.pims_seen = candidate.pims_seen
        customer.pims_modified_at = candidate.pims_modified_at
        for attr in ("email", "phone", "phone_normalized"):
            if not getattr(customer, attr):
                setattr(customer, attr, getattr(candidate, attr))
        customer.save()
        by_name = {normalize_text(p.name): p for p in pets if not p.pims_id}
        for pet in candidate_pets:
            twin = by_name.pop(normalize_text(pet.name), None)
            if twin is None:
                pet.client = customer
                pet.save(update_fields=["client", "updated_at"])
                continue
            # One animal: the customer's pet takes the PIMS link, history and vitals.
            pims_fields = {
                "pims_id": pet.pims_id,
                "pims_seen": pet.pims_seen,
                "pims_modified_at": pet.pims_modified_at,
            }
            pet.weights.update(patient=twin)
            ManualUpdate.objects.filter(patient=pet).update(patient=twin, client=customer)
            pet.pims_id = ""
            pet.is_active = False
            pet.client = customer
            pet.save(update_fields=["pims_id", "is_active", "client", "updated_at"])
            for attr, value in pims_fields.items():
                setattr(twin, attr, value)
            for attr in ("species", "breed", "sex", "microchip"):
                if not getattr(twin, attr):
                    setattr(twin, attr, getattr(pet, attr))
            twin.birth_date = twin.birth_date or pet.birth_date
            if pet.weight is not None:
                twin.weight, twin.weight_unit = pet.weight, pet.weight_unit
            twin.is_deceased, twin.deceased_on = (
                twin.is_deceased or pet.is_deceased,
                twin.deceased_on or pet.deceased_on,
            )
            twin.save()
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
        _resolve(update, status=ManualUpdate.Status.MERGED, actor=actor)
        ClientMerge.objects.create(
            clinic=update.clinic,
            customer=customer,
            pims_id=pims_id,
            method=ClientMerge.Method.STAFF,
            rule=update.detail,
            run=update.run,
            merged_by=actor if getattr(actor, "pk", None) else None,
            snapshot=snapshot,
        )
        audit_log(
            action="manual_update.match_confirmed",
            actor=actor,
            request=request,
            clinic=update.clinic,
            obj=customer,
            before={"pims_id": ""},
            after={"pims_id": pims_id, "merged_client": candidate.pk},
        )
    return update


def manual_update_counts(*, clinic: Clinic) -> dict[str, int]:
    """Pending manual updates by kind, and in all."""
    rows = (
        ManualUpdate.objects.for_clinic(clinic)
        .pending()
        .values_list("kind")
        .annotate(n=Count("id"))
    )
    counts = dict.fromkeys(ManualUpdate.Kind.values, 0)
    counts.update(dict(rows))
    counts["total"] = sum(counts.values())
    return counts


# --- home-delivery customers ---------------------------------------------------------------

CUSTOMER_COLUMNS = (
    "customer_ref",
    "first_name",
    "last_name",
    "email",
    "phone",
    "line1",
    "line2",
    "city",
    "state",
    "postcode",
    "pet_names",
)
_CUSTOMER_FIELDS = {
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email",
    "phone": "phone",
    "line1": "address_line1",
    "line2": "address_line2",
    "city": "city",
    "state": "state",
    "postcode": "postcode",
}


@dataclass
class CustomerImport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    pets_created: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def _customer_row(row: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {
        key: " ".join((row.get(key) or "").split()) for key in CUSTOMER_COLUMNS
    }
    if not values["customer_ref"]:
        raise ValueError("customer_ref is required.")
    if not values["first_name"] and not values["last_name"]:
        raise ValueError("a first or last name is required.")
    values["email"] = values["email"].lower()
    if values["email"]:
        try:
            validate_email(values["email"])
        except ValidationError as exc:
            raise ValueError(f"{values['email']!r} is not an email address.") from exc
    limits = {f.name: f.max_length for f in Client._meta.concrete_fields if f.max_length}
    limits["customer_ref"] = 64
    for key, attr in (*_CUSTOMER_FIELDS.items(), ("customer_ref", "customer_ref")):
        if limits.get(attr) and len(values[key]) > limits[attr]:
            raise ValueError(f"{key} is longer than {limits[attr]} characters.")
    values["pets"] = [name.strip() for name in values.pop("pet_names").split(";") if name.strip()]
    return values


def customers_import(
    *, clinic: Clinic, rows: Iterable[dict[str, str]], actor_label: str = "import"
) -> CustomerImport:
    """Load the store's existing home-delivery customers of a clinic (PIMS.md CSV).

    A row with a known ``customer_ref`` refreshes that customer; a bad row is reported with
    its line number and the rest go in. One transaction: a crash leaves nothing half-loaded.
    """
    result = CustomerImport()
    parsed: dict[str, tuple[int, dict[str, Any]]] = {}
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        try:
            values = _customer_row(row)
        except ValueError as exc:
            result.errors.append((line, str(exc)))
            continue
        if values["customer_ref"] in parsed:
            result.errors.append(
                (
                    line,
                    f"customer_ref {values['customer_ref']} repeats line "
                    f"{parsed[values['customer_ref']][0]}.",
                )
            )
            continue
        parsed[values["customer_ref"]] = (line, values)
    region = clinic.country or "US"
    with transaction.atomic():
        existing = {
            c.customer_ref: c
            for c in Client.objects.filter(clinic=clinic, customer_ref__in=list(parsed))
        }
        new_clients: list[Client] = []
        pets: list[Patient] = []
        known_pets = {
            (client_id, normalize_text(name))
            for client_id, name in Patient.objects.filter(
                client__in=list(existing.values())
            ).values_list("client_id", "name")
        }
        for ref, (_, values) in parsed.items():
            client = existing.get(ref)
            fields = {attr: values[key] for key, attr in _CUSTOMER_FIELDS.items()}
            if client is None:
                client = Client(
                    clinic=clinic,
                    customer_ref=ref,
                    country=region,
                    phone_normalized=normalize_phone(values["phone"], region),
                    **fields,
                )
                new_clients.append(client)
                result.created += 1
            else:
                before = {attr: getattr(client, attr) for attr in fields}
                changed = {attr: v for attr, v in fields.items() if before[attr] != v}
                if changed:
                    for attr, value in changed.items():
                        setattr(client, attr, value)
                    client.save()
                    audit_log(
                        action="customer.imported_update",
                        actor_label=actor_label,
                        clinic=clinic,
                        obj=client,
                        before={k: before[k] for k in changed},
                        after=changed,
                    )
                    result.updated += 1
                else:
                    result.unchanged += 1
            for name in values["pets"]:
                key = (client.pk, normalize_text(name))
                if client.pk is None or key not in known_pets:
                    pets.append(Patient(clinic=clinic, client=client, name=name))
                    known_pets.add(key)
        Client.objects.bulk_create(new_clients, batch_size=1000)
        Patient.objects.bulk_create(pets, batch_size=1000)
        result.pets_created = len(pets)
        if result.created:
            audit_log(
                action="customer.imported",
                actor_label=actor_label,
                clinic=clinic,
                after={"created": result.created, "pets": result.pets_created},
            )
    return result
