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
from records.matching import CustomerPool, normalize_phone, normalize_text, plan_matches
from records.models import (
    Client,
    ClientMerge,
    ManualUpdate,
    MatchRejection,
    Patient,
    WeightRecord,
    changed_fields_error,
)
from records.sync import (
    ADDRESS_TO_CLIENT,
    client_snapshot,
    patient_snapshot,
    people_of,
    rejected_pairs,
)


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
    the pet's name history (who, when, why), and the prescriptions app's re-prescription."""
    old = patient.name
    patient.name = name
    patient.save(update_fields=["name", "updated_at"])
    audit_log(
        action="patient.renamed",
        actor=actor,
        request=request,
        clinic=patient.clinic,
        obj=patient,
        before={"name": old},
        after={"name": name, "reason": reason.strip(), "same_pet_attested": True, **extra},
    )
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
            assert update.patient is not None
            name = _rename_checks(
                patient=update.patient,
                name=chosen.get("name", ""),
                reason=reason,
                same_pet=same_pet,
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
            return update
        if update.kind == ManualUpdate.Kind.CLIENT_NAME:
            target: Client = update.client
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
            # A PIMS that sends no country does not mean the customer has none.
            fields["country"] = fields["country"].upper() or target.country
            if not fields["address_line1"] or not fields["postcode"]:
                raise ManualUpdateError("A shipping address needs at least line 1 and a postcode.")
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
        newly_deceased: list[Patient] = []
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
            if pet.is_deceased and not twin.is_deceased:
                newly_deceased.append(twin)
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
        # The PIMS knew this pet had died: its open orders go on hold like after a sync.
        hooks.patients_became_deceased(newly_deceased)
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


def _match_imported_customers(clinic: Clinic, customers: list[Client]) -> int:
    """Customers imported after the PIMS's first copy: who might already be here from the PIMS?

    The sync engine matches PIMS clients to customers when the PIMS client is new; a customer
    who arrives later meets PIMS clients that already have a record, history and pets of
    their own. Joining two existing records is a person's decision, so every match found
    here, strong or not, becomes a possible match for staff.
    """
    region = clinic.country or "US"
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
                proposed={"rule": match.rule, "score": round(match.score)},
                created_at=now,
                updated_at=now,
            )
            for pims_id, match in plan.items()
        ],
        ignore_conflicts=True,  # a pair already waiting for staff stays as it is
    )
    return len(plan)


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


def _restore(obj: Client | Patient, values: dict[str, Any]) -> None:
    """Put back every stored field a snapshot kept (JSON values read back as field values)."""
    for f in type(obj)._meta.concrete_fields:
        if f.attname in values and not f.primary_key:
            value = values[f.attname]
            setattr(obj, f.attname, None if value is None else f.to_python(value))


def _client_from_pims(client: Client, seen: dict[str, Any], region: str) -> None:
    client.first_name = seen.get("first_name") or ""
    client.last_name = seen.get("last_name") or ""
    client.email = seen.get("email") or ""
    client.phone = seen.get("phone") or ""
    for key, attr in ADDRESS_TO_CLIENT.items():
        setattr(client, attr, seen.get(key) or "")
    client.country = client.country or region
    client.is_active = bool(seen.get("active", True))


def _patient_from_pims(pet: Patient, seen: dict[str, Any]) -> None:
    pet.name = seen.get("name") or ""
    for attr in ("species", "breed", "sex", "microchip"):
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
        now = timezone.now()
        snapshot = merge.snapshot or {}
        region = customer.clinic.country or "US"
        seen = dict(customer.pims_seen or {})
        seen_at = customer.pims_modified_at
        before = client_snapshot(customer)
        pets = list(customer.patients.order_by("pk"))
        pets_before = {pet.pk: patient_snapshot(pet) for pet in pets}
        own_pets = {row["id"]: row for row in snapshot.get("pets", [])}
        pims_pets = {row["id"]: row for row in snapshot.get("candidate_pets", [])}

        # The customer first: it gives the PIMS ids back before anything else takes them.
        _restore(customer, snapshot["customer"])
        customer.save()
        linked: dict[str, tuple[Patient, dict[str, Any], Any]] = {}  # pims_id -> customer pet
        for pet in pets:
            if pet.pk in own_pets:
                if pet.pims_id and not own_pets[pet.pk].get("pims_id"):
                    linked[pet.pims_id] = (pet, dict(pet.pims_seen or {}), pet.pims_modified_at)
                _restore(pet, own_pets[pet.pk])
                pet.save()

        if merge.method == ClientMerge.Method.STAFF and "candidate" in snapshot:
            pims_client = Client.objects.select_for_update().get(pk=snapshot["candidate"]["id"])
            _restore(pims_client, snapshot["candidate"])
        else:
            pims_client = Client(clinic=customer.clinic, country=region)
            _client_from_pims(pims_client, seen, region)
        pims_client.pims_id = merge.pims_id
        pims_client.pims_seen = seen
        pims_client.pims_modified_at = seen_at
        pims_client.merged_into = None
        pims_client.save()

        moved: list[Patient] = []
        pims_pet_for: dict[int, Patient] = {}  # customer pet pk -> the PIMS pet it was linked to
        for pet in pets:
            if pet.pk in pims_pets:  # a PIMS pet of a confirmed match, kept aside at the merge
                _restore(pet, pims_pets[pet.pk])
                twin = linked.pop(pet.pims_id, None)
                if twin is not None:
                    pet.pims_seen, pet.pims_modified_at = twin[1], twin[2]
                    pims_pet_for[twin[0].pk] = pet
                pet.save()
                moved.append(pet)
            elif pet.pk not in own_pets and pet.pims_id:  # came from the PIMS with the merge
                pet.client = pims_client
                pet.save(update_fields=["client", "updated_at"])
                moved.append(pet)
        for pims_id, (own, pet_seen, pet_seen_at) in linked.items():
            # An automatic merge linked the customer's pet to this PIMS pet: make it again.
            pims_pet = Patient(clinic=customer.clinic, client=pims_client, pims_id=pims_id)
            _patient_from_pims(pims_pet, pet_seen)
            pims_pet.pims_seen, pims_pet.pims_modified_at = pet_seen, pet_seen_at
            pims_pet.save()
            pims_pet_for[own.pk] = pims_pet
            moved.append(pims_pet)
        for own_pk, pims_pet in pims_pet_for.items():
            # Weighings the PIMS sent belong to the PIMS's pet; staff's stay with the customer's.
            WeightRecord.objects.filter(patient_id=own_pk, source=WeightRecord.Source.PIMS).update(
                patient=pims_pet
            )

        # Changes the PIMS made while merged, still waiting for staff, follow the PIMS record.
        moved_ids = {pet.pk for pet in moved}
        for update in ManualUpdate.objects.select_for_update().filter(
            client=customer, status=ManualUpdate.Status.PENDING, candidate__isnull=True
        ):
            if update.patient_id is None:
                update.client = pims_client
                if update.kind == ManualUpdate.Kind.CLIENT_NAME:
                    current = {
                        "first_name": pims_client.first_name,
                        "last_name": pims_client.last_name,
                    }
                else:
                    current = {
                        key: getattr(pims_client, attr) for key, attr in ADDRESS_TO_CLIENT.items()
                    }
                _refresh_pending(update, current, now)
            elif update.patient_id in pims_pet_for or update.patient_id in moved_ids:
                target = pims_pet_for.get(update.patient_id) or next(
                    p for p in moved if p.pk == update.patient_id
                )
                update.client, update.patient = pims_client, target
                _refresh_pending(update, {"name": target.name}, now)

        MatchRejection.objects.get_or_create(
            clinic=customer.clinic,
            customer=customer,
            pims_id=merge.pims_id,
            defaults={"rejected_by": actor if getattr(actor, "pk", None) else None},
        )
        after = client_snapshot(customer)
        audit_log(
            action="client.unmerged",
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
            action="client.unmerged_copy",
            actor=actor,
            request=request,
            clinic=customer.clinic,
            obj=pims_client,
            after={"pims_id": merge.pims_id, "merge": merge.pk, "customer": customer.pk},
        )
        for pet in {p.pk: p for p in [*pets, *moved]}.values():
            old = pets_before.get(pet.pk, {})
            new = patient_snapshot(pet)
            changed = {k: v for k, v in new.items() if old.get(k) != v}
            if changed:
                audit_log(
                    action="patient.unmerged",
                    actor=actor,
                    request=request,
                    clinic=customer.clinic,
                    obj=pet,
                    before={k: old.get(k) for k in changed} if old else None,
                    after={**changed, "merge": merge.pk},
                )
    return pims_client
