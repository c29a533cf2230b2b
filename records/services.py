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
from records import hooks
from records.fields import ADDRESS_TO_CLIENT, CLIENT_NAME_ATTRS
from records.matching import CustomerPool, normalize_phone, normalize_text, plan_matches
from records.merging import STAFF_MERGE_ACTION, merge_audit, possible_match_merge
from records.models import (
    Client,
    ManualUpdate,
    MatchRejection,
    Patient,
    changed_fields_error,
)
from records.suggestions import suggestion_proposed
from records.sync import people_of, rejected_pairs


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
    """Lock what the action touches, in the order the sync engine locks it (clients by id,
    then pets, then the update), and check the update is still pending."""
    client_ids = sorted(pk for pk in (update.client_id, update.candidate_id) if pk)
    list(Client.objects.select_for_update().filter(pk__in=client_ids).order_by("pk"))
    if update.patient_id:
        list(Patient.objects.select_for_update().filter(pk=update.patient_id))
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


def _rename_checks(*, patient: Patient, name: str, reason: str, same_pet: bool) -> str:
    name = name.strip()
    if not name:
        raise ManualUpdateError("The pet's name cannot be empty.")
    if name == patient.name:
        raise ManualUpdateError(f"The pet is already called {name}.")
    if not same_pet:
        raise ManualUpdateError(
            "Confirm that this is the same pet: a different animal needs its own record."
        )
    if not reason.strip():
        raise ManualUpdateError("Give the reason for the rename; it stays on the pet's record.")
    error = changed_fields_error(patient, {"name": name})
    if error:
        raise ManualUpdateError(error)
    return name


def same_name(one: str, other: str) -> bool:
    """Two spellings of one name: the same letters and words, whatever their case and spacing
    ("Winston", "WINSTON ")."""
    return " ".join(one.split()).casefold() == " ".join(other.split()).casefold()


def _rename(
    *,
    patient: Patient,
    name: str,
    reason: str,
    actor: Any,
    request: HttpRequest | None,
    **extra: Any,
) -> None:
    """The rename itself, inside the caller's transaction: the record, the audit row that is
    the pet's name history (who, when, why), and the prescriptions app's re-prescription.

    A name written again in another case or spacing is the same name: the history keeps it,
    and the pet's prescriptions, made out to that name, stand (a vet's approval is not ended
    for "WINSTON")."""
    old = patient.name
    respelled = same_name(old, name)
    patient.name = name
    patient.save(update_fields=["name", "updated_at"])
    audit_log(
        action="patient.renamed",
        actor=actor,
        request=request,
        clinic=patient.clinic,
        obj=patient,
        before={"name": old},
        after={
            "name": name,
            "reason": reason.strip(),
            "same_pet_attested": True,
            **({"respelled": True} if respelled else {}),
            **extra,
        },
    )
    if not respelled:
        hooks.patient_was_renamed(patient, old, actor, reason.strip())


def patient_rename(
    *,
    patient: Patient,
    name: str,
    reason: str,
    same_pet: bool,
    actor: Any,
    request: HttpRequest | None = None,
) -> Patient:
    """Rename a pet by hand: staff attest it is the same individual and say why. Its open
    prescriptions are ended and re-drafted under the new name, in this transaction."""
    with transaction.atomic():
        patient = Patient.objects.select_for_update().get(pk=patient.pk)
        name = _rename_checks(patient=patient, name=name, reason=reason, same_pet=same_pet)
        _rename(patient=patient, name=name, reason=reason, actor=actor, request=request)
    return patient


def manual_update_accept(
    *,
    update: ManualUpdate,
    actor: Any,
    values: dict[str, str] | None = None,
    request: HttpRequest | None = None,
    reason: str = "",
    same_pet: bool = False,
) -> ManualUpdate:
    """Apply a held client name, client address or pet name (as proposed, or as edited).

    A pet name goes through the rename flow: ``same_pet`` and a ``reason`` are required."""
    with transaction.atomic():
        update = _pending(update)
        if update.kind == ManualUpdate.Kind.POSSIBLE_MATCH:
            raise ManualUpdateError("A possible match is confirmed or rejected, not accepted.")
        chosen = {**update.proposed, **(values or {})}
        edited = values is not None and any(
            update.proposed.get(k) != v for k, v in (values or {}).items()
        )
        if update.kind == ManualUpdate.Kind.PET_NAME:
            _accept_pet_name(
                update,
                chosen,
                edited=edited,
                actor=actor,
                request=request,
                reason=reason,
                same_pet=same_pet,
            )
        else:
            _accept_client_change(update, chosen, edited=edited, actor=actor, request=request)
    return update


def _accept_pet_name(
    update: ManualUpdate,
    chosen: dict[str, Any],
    *,
    edited: bool,
    actor: Any,
    request: HttpRequest | None,
    reason: str,
    same_pet: bool,
) -> None:
    assert update.patient is not None
    name = _rename_checks(
        patient=update.patient, name=chosen.get("name", ""), reason=reason, same_pet=same_pet
    )
    _resolve(
        update,
        status=ManualUpdate.Status.ACCEPTED,
        actor=actor,
        note="Edited before accepting." if edited else "",
    )
    _rename(
        patient=update.patient,
        name=name,
        reason=reason,
        actor=actor,
        request=request,
        manual_update=update.pk,
        edited=edited,
    )


def _accept_client_change(
    update: ManualUpdate,
    chosen: dict[str, Any],
    *,
    edited: bool,
    actor: Any,
    request: HttpRequest | None,
) -> None:
    target: Client = update.client
    fields = _client_change_fields(update, chosen)
    before = {attr: getattr(target, attr) for attr in fields}
    for attr, value in fields.items():
        setattr(target, attr, value)
    error = changed_fields_error(target, fields)
    if error:
        raise ManualUpdateError(error)
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


def _client_change_fields(update: ManualUpdate, chosen: dict[str, Any]) -> dict[str, str]:
    """The client's fields a held name or address sets (as chosen), checked for shipping."""
    if update.kind == ManualUpdate.Kind.CLIENT_NAME:
        fields = {attr: chosen.get(attr, "").strip() for attr in CLIENT_NAME_ATTRS}
        if not fields["first_name"] and not fields["last_name"]:
            raise ManualUpdateError("A shipping name needs a first or a last name.")
        return fields
    fields = {attr: (chosen.get(key) or "").strip() for key, attr in ADDRESS_TO_CLIENT.items()}
    # A PIMS that sends no country does not mean the customer has none.
    fields["country"] = fields["country"].upper() or update.client.country
    if not fields["address_line1"] or not fields["postcode"]:
        raise ManualUpdateError("A shipping address needs at least line 1 and a postcode.")
    return fields


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
        merge = possible_match_merge(
            update=update, customer=customer, candidate=candidate, actor=actor
        )
        _resolve(update, status=ManualUpdate.Status.MERGED, actor=actor)
        before, after = merge_audit(merge.pims_id, merged_client=candidate.pk)
        audit_log(
            action=STAFF_MERGE_ACTION,
            actor=actor,
            request=request,
            clinic=update.clinic,
            obj=customer,
            before=before,
            after=after,
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
# CSV column → Client field (the address columns are named like the PIMS's; no country).
_CUSTOMER_FIELDS = {
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email",
    "phone": "phone",
    **{key: attr for key, attr in ADDRESS_TO_CLIENT.items() if key != "country"},
}


@dataclass
class CustomerImport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    pets_created: int = 0
    possible_matches: int = 0
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
    too_long = [name for name in values["pets"] if len(name) > 100]
    if too_long:
        raise ValueError(f"pet name {too_long[0][:20]!r}… is longer than 100 characters.")
    return values


def customers_import(
    *, clinic: Clinic, rows: Iterable[dict[str, str]], actor_label: str = "import"
) -> CustomerImport:
    """Load the store's existing home-delivery customers of a clinic (PIMS.md CSV).

    A row with a known ``customer_ref`` refreshes that customer; a bad row is reported with
    its line number and the rest go in. One transaction: a crash leaves nothing half-loaded.
    """
    result = CustomerImport()
    parsed = _parse_customer_rows(rows, result.errors)
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
            if client is None:
                client = _new_customer(clinic, ref, values)
                new_clients.append(client)
                result.created += 1
            elif _customer_refresh(client, values, clinic=clinic, actor_label=actor_label):
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
        if new_clients:
            result.possible_matches = _match_imported_customers(clinic, new_clients)
        if result.created:
            audit_log(
                action="customer.imported",
                actor_label=actor_label,
                clinic=clinic,
                after={
                    "created": result.created,
                    "pets": result.pets_created,
                    "possible_matches": result.possible_matches,
                },
            )
    return result


def _parse_customer_rows(
    rows: Iterable[dict[str, str]], errors: list[tuple[int, str]]
) -> dict[str, tuple[int, dict[str, Any]]]:
    """customer_ref -> (line, values) of the good rows; each bad row goes to ``errors``."""
    parsed: dict[str, tuple[int, dict[str, Any]]] = {}
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        try:
            values = _customer_row(row)
        except ValueError as exc:
            errors.append((line, str(exc)))
            continue
        if values["customer_ref"] in parsed:
            errors.append(
                (
                    line,
                    f"customer_ref {values['customer_ref']} repeats line "
                    f"{parsed[values['customer_ref']][0]}.",
                )
            )
            continue
        parsed[values["customer_ref"]] = (line, values)
    return parsed


def _new_customer(clinic: Clinic, ref: str, values: dict[str, Any]) -> Client:
    """An imported customer, not saved yet (bulk-created, so its phone normalised here)."""
    return Client(
        clinic=clinic,
        customer_ref=ref,
        country=clinic.region,
        phone_normalized=normalize_phone(values["phone"], clinic.region),
        **{attr: values[key] for key, attr in _CUSTOMER_FIELDS.items()},
    )


def _customer_refresh(
    client: Client, values: dict[str, Any], *, clinic: Clinic, actor_label: str
) -> bool:
    """A known customer takes the row's values; returns whether anything changed."""
    fields = {attr: values[key] for key, attr in _CUSTOMER_FIELDS.items()}
    before = {attr: getattr(client, attr) for attr in fields}
    changed = {attr: v for attr, v in fields.items() if before[attr] != v}
    if not changed:
        return False
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
    return True


def _match_imported_customers(clinic: Clinic, customers: list[Client]) -> int:
    """Customers imported after the PIMS's first copy: who might already be here from the PIMS?

    The sync engine matches PIMS clients to customers when the PIMS client is new; a customer
    who arrives later meets PIMS clients that already have a record, history and pets of
    their own. Joining two existing records is a person's decision, so every match found
    here, strong or not, becomes a possible match for staff.
    """
    region = clinic.region
    pool = CustomerPool(rejected=rejected_pairs(clinic))
    for person, _ in people_of(
        Client.objects.filter(pk__in=[c.pk for c in customers]), key="pk", region=region
    ):
        pool.add(person)
    pims_clients = Client.objects.filter(
        clinic=clinic, customer_ref="", merged_into__isnull=True
    ).exclude(pims_id="")
    found = people_of(pims_clients, key="pims_id", region=region)
    ids_by_pims_id = {person.key: pk for person, pk in found}
    people = [person for person, _ in found]
    plan = plan_matches(pool, people)
    now = timezone.now()
    ManualUpdate.objects.bulk_create(
        [
            ManualUpdate(
                clinic=clinic,
                kind=ManualUpdate.Kind.POSSIBLE_MATCH,
                client_id=int(match.customer_key),
                candidate_id=ids_by_pims_id[pims_id],
                detail=f"{match.rule} (found when the customer was imported)",
                proposed=suggestion_proposed(match),
                created_at=now,
                updated_at=now,
            )
            for pims_id, match in plan.items()
        ],
        ignore_conflicts=True,  # a pair already waiting for staff stays as it is
    )
    return len(plan)
