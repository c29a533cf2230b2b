"""The demo's records: clients and pets made up for a clinic that has none, and Riverside's
first copy of its ezyVet records, pulled from an in-process emulator."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from django.utils import timezone
from faker import Faker

from clinics.models import AGENT_CONNECTORS, Clinic, Integration, Role, Vet
from clinics.onboarding import onboarding_step_update
from prescriptions.demo.clinics import DemoClinic
from records.models import Client, SyncRun
from records.pulls import ezyvet_pull_run, ezyvet_pull_start
from records.services import customers_import
from records.sync import sync_run_create, sync_run_process

SPECIES = {
    "Canine": [
        "Labrador Retriever",
        "Beagle",
        "German Shepherd",
        "Golden Retriever",
        "French Bulldog",
        "Dachshund",
        "Border Collie",
        "Mixed breed",
    ],
    "Feline": ["Domestic Shorthair", "Maine Coon", "Siamese", "Ragdoll", "Domestic Longhair"],
}
SEXES = ["Male neutered", "Female spayed", "Male", "Female"]
PET_NAMES = [
    "Biscuit",
    "Luna",
    "Max",
    "Bella",
    "Charlie",
    "Daisy",
    "Milo",
    "Cooper",
    "Lucy",
    "Rocky",
    "Willow",
    "Pepper",
    "Ziggy",
    "Maple",
    "Olive",
    "Bear",
    "Nala",
    "Scout",
    "Hazel",
    "Tucker",
    "Juniper",
    "Moose",
    "Pickles",
    "Ginger",
    "Oreo",
    "Shadow",
]


# The demo's ezyVet emulator as scripts/run.sh starts it; the same size and seed give the same
# records, so what Riverside copies here is what the running emulator holds.
EMULATOR_CLIENTS = 500
EMULATOR_SEED = 1


STORE_SHARE = 10  # one client in ten is a home-delivery customer of the clinic's store


def records_seed(
    clinic: Clinic, spec: DemoClinic, *, count: int, fake: Faker, rng: random.Random
) -> int:
    """A clinic's people, through the doors real data takes: the store's home-delivery
    customers through the customer import, an agent clinic's PIMS records through an agent
    batch (and a later batch with changes for staff); Riverside's come from its first pull.
    How many clients there are afterwards (0 if the clinic had some already)."""
    if Client.objects.for_clinic(clinic).exists():
        return 0
    store = [_store_row(spec, index, fake=fake, rng=rng) for index in range(count // STORE_SHARE)]
    customers_import(clinic=clinic, rows=store, actor_label="demo import")
    if spec.connector in AGENT_CONNECTORS:
        pims = [_pims_entry(index, fake=fake, rng=rng, spec=spec) for index in range(count)]
        # Some store customers are clients of the clinic too: merged on the first copy (the
        # first of them is only a possible match, for staff to decide).
        known = store[: min(len(store), max(3, len(store) // 3))]
        pims[: len(known)] = [_same_person(row, i, rng) for i, row in enumerate(known)]
        _ingest(clinic, spec, pims, batch_id="demo-first-copy", full=True, days_ago=2)
        _ingest(clinic, spec, _changes(pims), batch_id="demo-changes", full=False, days_ago=0)
        _onboarding_done(clinic)
    return Client.objects.for_clinic(clinic).count()


def _store_row(spec: DemoClinic, index: int, *, fake: Faker, rng: random.Random) -> dict[str, str]:
    first, last = fake.first_name(), fake.last_name()
    return {
        "customer_ref": f"HD-{spec.slug[:3].upper()}-{10000 + index}",
        "first_name": first,
        "last_name": last,
        "email": f"{first}.{last}{rng.randint(1, 99)}@example.org".lower(),
        "phone": f"({rng.randint(201, 989)}) 555-{rng.randint(100, 199):04d}",
        "line1": fake.street_address(),
        "line2": "",
        "city": spec.city,
        "state": spec.state,
        "postcode": spec.postcode,
        "pet_names": rng.choice(PET_NAMES),
    }


def _pet_entry(pims_id: str, *, rng: random.Random, name: str = "") -> dict[str, Any]:
    species = rng.choice(list(SPECIES))
    today = date.today()
    deceased = rng.random() < 0.04
    low, high = (3, 40) if species == "Canine" else (2.5, 7)
    return {
        "pims_id": pims_id,
        "name": name or rng.choice(PET_NAMES),
        "species": species,
        "breed": rng.choice(SPECIES[species]),
        "sex": rng.choice(SEXES),
        "birth_date": (today - timedelta(days=rng.randint(120, 15 * 365))).isoformat(),
        "weight": round(rng.uniform(low, high), 1),
        "weight_unit": "kg",
        "deceased": deceased,
        "deceased_on": (today - timedelta(days=rng.randint(1, 300))).isoformat()
        if deceased
        else None,
        "active": True,
    }


def _pims_entry(index: int, *, fake: Faker, rng: random.Random, spec: DemoClinic) -> dict[str, Any]:
    first, last = fake.first_name(), fake.last_name()
    return {
        "pims_id": f"C{20000 + index}",
        "first_name": first,
        "last_name": last,
        "email": f"{first}.{last}{rng.randint(1, 99)}@example.org".lower(),
        "phone": f"+1 {rng.randint(201, 989)} 555 {rng.randint(100, 199):04d}",
        "address": {
            "line1": fake.street_address(),
            "line2": "",
            "city": spec.city,
            "state": spec.state,
            "postcode": spec.postcode,
            "country": "US",
        },
        "active": True,
        "patients": [
            _pet_entry(f"P{50000 + index * 3 + n}", rng=rng)
            for n in range(rng.choice((1, 1, 1, 2, 2, 3)))
        ],
    }


def _another_first_name(first_name: str) -> str:
    return "Casey" if first_name == "Jordan" else "Jordan"


def _same_person(row: dict[str, str], index: int, rng: random.Random) -> dict[str, Any]:
    """The PIMS's record of a store customer: merged on first copy (the merge story)."""
    entry: dict[str, Any] = {
        "pims_id": f"C{29000 + index}",
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "email": row["email"],
        "phone": row["phone"],
        "address": {
            "line1": row["line1"],
            "line2": "",
            "city": row["city"],
            "state": row["state"],
            "postcode": row["postcode"],
            "country": "US",
        },
        "active": True,
        "patients": [_pet_entry(f"P{59000 + index}", rng=rng, name=row["pet_names"])],
    }
    if index == 0:
        # A plausible but uncertain match: another first name (the customer's partner?), no
        # email or phone, a new address; the same surname, town and pet. The matcher holds
        # it for staff (a short form of the same name, like "Sam", it would merge).
        entry["first_name"] = _another_first_name(row["first_name"])
        entry["email"] = ""
        entry["phone"] = ""
        entry["address"] = {**entry["address"], "line1": "1 Other St"}
    return entry


def _changes(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The next day's batch: an owner's new address, a renamed pet, a new weight — held for
    staff or applied as the field policy says."""
    moved, renamed, weighed = (json.loads(json.dumps(e)) for e in entries[-3:])
    moved["address"]["line1"] = "48 Lakeside Dr"
    renamed["patients"][0]["name"] = renamed["patients"][0]["name"] + " Jr"
    weighed["patients"][0]["weight"] = round(weighed["patients"][0]["weight"] * 1.05, 1)
    return [moved, renamed, weighed]


def _ingest(
    clinic: Clinic,
    spec: DemoClinic,
    entries: list[dict[str, Any]],
    *,
    batch_id: str,
    full: bool,
    days_ago: int,
) -> None:
    """An agent batch, as the clinic's agent would post it, applied by the sync engine."""
    sent = timezone.now() - timedelta(days=days_ago)
    for entry in entries:
        entry["modified_at"] = sent.isoformat()
        for pet in entry["patients"]:
            pet["modified_at"] = sent.isoformat()
    body = json.dumps(
        {
            "source": spec.connector.value,
            "batch_id": batch_id,
            "sent_at": sent.isoformat(),
            "full": full,
            "clients": entries,
        }
    )
    run, _ = sync_run_create(clinic=clinic, body=body, trigger=SyncRun.Trigger.AGENT)
    sync_run_process(run_id=run.pk)
    SyncRun.objects.filter(pk=run.pk).update(created_at=sent)


def _onboarding_done(clinic: Clinic) -> None:
    """A live demo clinic finished onboarding: every step of its checklist is ticked."""
    checklist = getattr(clinic.integration, "checklist", None)
    if checklist is None:
        return
    if not checklist.has_technical_contact:
        # What the onboarding team types into the checklist's form in the admin.
        type(checklist).objects.filter(pk=checklist.pk).update(
            technical_contact_name="Jordan Lee",
            technical_contact_email=f"it@{clinic.slug}.example",
        )
    for step in checklist.steps.filter(done_at__isnull=True).order_by("pk"):
        onboarding_step_update(step=step, done=True, notes="Done during the demo's onboarding.")


def first_pull(clinic: Clinic, *, say: Callable[[str], None]) -> None:
    """Riverside's first copy of its ezyVet records, through the real pull, from an
    in-process emulator identical to the demo's (so a later "Sync now" finds the same site);
    before it, store customers who are ezyVet clients too (merged, or one possible match);
    after it, a day of edits in ezyVet pulled as a delta (changes held for staff)."""
    integration = clinic.integration
    linked = Client.objects.for_clinic(clinic).exclude(pims_id="").exists()
    if integration.watermark is not None or linked:
        return
    # Demo tooling only: the product itself never imports the emulator.
    from vetsync.pims.emulator import EzyVetEmulator

    site = EzyVetEmulator(
        clients=EMULATOR_CLIENTS,
        seed=EMULATOR_SEED,
        rate_per_minute=0,
        endpoint_rate_per_minute=0,
        timezone=clinic.timezone,
    )
    customers_import(
        clinic=clinic, rows=_customers_known_to(site, count=6), actor_label="demo import"
    )
    base_url = integration.base_url
    Integration.objects.filter(pk=integration.pk).update(base_url=site.start())
    try:
        run = _pull(integration)
        contact, animal = site.customer_ids()[-1], site.records("animal")[-1]
        site.update_record("contact", contact, {"last_name": "Okafor-Reyes"})
        site.update_record("animal", animal["id"], {"name": f"{animal['name']} Belle"})
        delta = _pull(integration)
    finally:
        Integration.objects.filter(pk=integration.pk).update(base_url=base_url)
        site.stop()
    _onboarding_done(clinic)
    vet = Vet.objects.get(clinic=clinic, user__username=f"{clinic.slug}-{Role.VET.value}")
    Vet.objects.filter(pk=vet.pk).update(pims_user_id=_emulator_vet_user(site, vet))
    say(
        f"{clinic.name}: first ezyVet pull {run.get_status_display().lower()}, "
        f"then a delta {delta.get_status_display().lower()}"
    )


def _emulator_vet_user(site: Any, vet: Vet) -> str:
    """The site's vet user with the vet's own name: prescriptions name the vet who approved
    them (another vet user's id would put someone else in the clinic's record)."""
    vet_contacts = {str(c["id"]) for c in site.records("contact") if c.get("is_vet") == "1"}
    name = (vet.first_name, vet.last_name)
    for user in site.records("user"):
        if (
            str(user["contact_id"]) in vet_contacts
            and (user["first_name"], user["last_name"]) == name
        ):
            return str(user["id"])
    raise LookupError(f"The demo's ezyVet emulator has no vet user named {vet}.")


def _pull(integration: Integration) -> SyncRun:
    integration.refresh_from_db()
    run, _ = ezyvet_pull_start(integration=integration)
    return ezyvet_pull_run(run_id=run.pk)


def _customers_known_to(site: Any, *, count: int) -> list[dict[str, str]]:
    """Store customers who are ezyVet clients as well (the first is only a plausible match)."""
    rows = []
    for index, contact_id in enumerate(site.customer_ids()[:count]):
        contact = site.record("contact", contact_id)
        details = [site.record("contactdetail", d) for d in contact["contact_detail_list"]]
        address = site.record("address", contact["address_physical"])
        pets = [a["name"] for a in site.records("animal") if a["contact_id"] == contact_id]
        row = {
            "customer_ref": f"HD-RIV-{20000 + index}",
            "first_name": contact["first_name"],
            "last_name": contact["last_name"],
            "email": next((d["value"] for d in details if d["name"] == "Email"), ""),
            "phone": next((d["value"] for d in details if d["name"] != "Email"), ""),
            "line1": address["street_1"],
            "line2": address["street_2"],
            "city": address["city"],
            "state": address["state"],
            "postcode": address["post_code"],
            "pet_names": ";".join(pets),
        }
        if index == 0:
            # Only a plausible match: another first name (a partner?), no email, another
            # phone and address; the same surname, town and pet. Staff confirm it or keep it
            # apart.
            row.update(
                first_name=_another_first_name(row["first_name"]),
                email="",
                phone="",
                line1="1 Other St",
            )
        rows.append(row)
    return rows
