"""Reading a run's batch and planning its merges: which new PIMS clients are customers the
pharmacy already has (the verdicts are kept on the run, so a resumed run decides the same)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import connection
from django.db.models import F, Q

from clinics.models import Clinic
from records.match_models import match_fit_record, pooled_prior
from records.matching import CustomerPool, Person, plan_matches
from records.models import Client, MatchRejection, Patient, SyncRun
from vetsync.lib.bulk import AnyOf
from vetsync.pims import agent
from vetsync.pims.agent import Entry
from vetsync.pims.records import PimsClient, PimsPatient, QuarantinedRecord


def parse_entries(
    raw_clients: Iterable[Any],
    read: Callable[[Any], Entry] = agent.parse_client_entry,
    as_object: Callable[[Any], Any] = lambda raw: raw,
) -> list[Entry]:
    """Validate every entry; a pims_id seen earlier in the batch is quarantined as a repeat.

    ``read`` reads one entry (``compiled.read_entry`` takes entries as their JSON text, and
    ``compiled.entry_object`` is then their ``as_object``, for what is kept of a repeat)."""
    entries: list[Entry] = []
    seen_clients: set[str] = set()
    seen_patients: set[str] = set()
    for raw in raw_clients:
        client, quarantined = read(raw)
        if client is not None:
            if client.pims_id in seen_clients:
                reason = f"Client {client.pims_id} appears more than once in this batch."
                entry = dict(as_object(raw))
                quarantined = [QuarantinedRecord("client", client.pims_id, reason, entry)]
                client = None
            else:
                seen_clients.add(client.pims_id)
                kept = []
                for patient in client.patients:
                    if patient.pims_id in seen_patients:
                        quarantined.append(
                            QuarantinedRecord(
                                "patient",
                                patient.pims_id,
                                f"Patient {patient.pims_id} appears under two clients in "
                                "this batch.",
                                dict(as_object(raw)),
                                client.pims_id,
                            )
                        )
                    else:
                        seen_patients.add(patient.pims_id)
                        kept.append(patient)
                if len(kept) != len(client.patients):
                    client = _replace_patients(client, tuple(kept))
        entries.append((client, quarantined))
    return entries


def _replace_patients(client: PimsClient, patients: tuple[PimsPatient, ...]) -> PimsClient:
    return client._replace(patients=patients)


# Up to this many ids a batch's known clients are looked up without asking first whether the
# clinic has any PIMS record at all.
LOOKUP_DIRECTLY = 1000


def match_plan(run: SyncRun, entries: list[Entry]) -> dict[str, list[Any]]:
    """Merge verdicts for the batch's clients that VetSync has never seen."""
    clinic = run.clinic
    batch_ids = [c.pims_id for c, _ in entries if c is not None]
    # A first copy into a clinic with no PIMS record yet need not look its 100,000 ids up
    # (a small batch looks its ids up at once).
    any_linked = (
        len(batch_ids) <= LOOKUP_DIRECTLY
        or Client.objects.filter(clinic=clinic).exclude(pims_id="").exists()
    )
    linked = {
        pims_id
        for (pims_id,) in by_pims_id(
            Client.objects.all(), clinic.pk, batch_ids if any_linked else [], fields=("pims_id",)
        )
    }
    new_clients = [c for c, _ in entries if c is not None and c.pims_id not in linked]
    if not new_clients:
        return {}  # a delta of known clients: nobody to match
    customers = Client.objects.filter(clinic=clinic, pims_id="", merged_into__isnull=True).exclude(
        customer_ref=""
    )
    region = clinic.region
    candidates = people_of(customers, key="pk", region=region, unlinked_pets_only=True)
    if not candidates:
        return {}  # no home-delivery customer to merge into
    pool = CustomerPool(rejected=rejected_pairs(clinic), prior_m=pooled_prior(clinic=clinic))
    for person, _ in candidates:
        pool.add(person)
    people = [_person(client, region) for client in new_clients]
    plan = plan_matches(pool, people)
    if pool.fit is not None:
        match_fit_record(clinic=clinic, fit=pool.fit)
    return {
        pims_id: [m.verdict.value, m.customer_key, m.rule, m.score, m.evidence]
        for pims_id, m in plan.items()
    }


def rejected_pairs(clinic: Clinic) -> set[tuple[str, str]]:
    """(customer id, PIMS id) pairs staff said are different people."""
    return {
        (str(customer_id), pims_id)
        for customer_id, pims_id in MatchRejection.objects.filter(clinic=clinic).values_list(
            "customer_id", "pims_id"
        )
    }


def people_of(
    clients: Any, *, key: str, region: str, unlinked_pets_only: bool = False
) -> list[tuple[Person, int]]:
    """The comparable form of each client (keyed by ``key``: "pk" or "pims_id"), with its pk."""
    rows = list(
        clients.order_by().values_list(
            "pk",
            key,
            "first_name",
            "last_name",
            "email",
            "phone",
            "address_line1",
            "address_line2",
            "city",
            "postcode",
        )
    )
    pet_names: dict[int, list[str]] = {}
    # By lists of ids rather than a subquery: on freshly loaded tables PostgreSQL has no
    # statistics yet and plans the subquery as a nested loop of scans (seconds, not ms).
    pks = [row[0] for row in rows]
    for start in range(0, len(pks), 1000):
        pets = Patient.objects.filter(client_id__in=pks[start : start + 1000]).order_by()
        if unlinked_pets_only:
            pets = pets.filter(pims_id="")
        for client_id, name in pets.values_list("client_id", "name"):
            pet_names.setdefault(client_id, []).append(name)
    return [
        (
            Person.build(
                key=str(keyed),
                first_name=first,
                last_name=last,
                email=email,
                phone=phone,
                line1=line1,
                line2=line2,
                city=city,
                postcode=postcode,
                pet_names=pet_names.get(pk, ()),
                region=region,
            ),
            pk,
        )
        for pk, keyed, first, last, email, phone, line1, line2, city, postcode in rows
    ]


def by_pims_id(
    queryset: Any, clinic_id: int, pims_ids: Sequence[str], *, fields: Sequence[str] = ()
) -> list[Any]:
    """The clinic's rows with these PIMS ids, 1,000 ids per query (10,000 on PostgreSQL).

    The query repeats the condition of the (clinic, pims_id) partial unique constraint, so
    every planner reads that index; another clinic's rows (numeric ids repeat across PIMS)
    are never read or locked.
    """
    found: list[Any] = []
    postgres = connection.vendor == "postgresql"
    step = 10_000 if postgres else 1000  # one array parameter on PostgreSQL, not one per id
    for start in range(0, len(pims_ids), step):
        ids = pims_ids[start : start + step]
        match = AnyOf(F("pims_id"), list(ids)) if postgres else Q(pims_id__in=ids)
        part = (
            queryset.filter(match, clinic_id=clinic_id)
            .exclude(pims_id="")
            .order_by("pk")  # rows locked in order
        )
        found.extend(part.values_list(*fields) if fields else part)
    return found


def _person(client: PimsClient, region: str) -> Person:
    return Person.build(
        key=client.pims_id,
        first_name=client.first_name,
        last_name=client.last_name,
        email=client.email,
        phone=client.phone,
        line1=client.address.line1,
        line2=client.address.line2,
        city=client.address.city,
        postcode=client.address.postcode,
        pet_names=[p.name for p in client.patients],
        region=region,
    )
