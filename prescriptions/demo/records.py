"""The demo's records: clients and pets made up for a clinic that has none, and Riverside's
first copy of its ezyVet records, pulled from an in-process emulator."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal

from faker import Faker

from clinics.models import AGENT_CONNECTORS, Clinic, Integration, Role, Vet
from prescriptions.demo.clinics import DemoClinic
from records.models import Client, Patient
from records.pulls import ezyvet_pull_run, ezyvet_pull_start

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


def records_seed(
    clinic: Clinic, spec: DemoClinic, *, count: int, fake: Faker, rng: random.Random
) -> int:
    """Made-up clients and their pets, for a clinic that has no clients; how many it made."""
    if Client.objects.for_clinic(clinic).exists():
        return 0
    clients = [_client(clinic, spec, index, fake=fake, rng=rng) for index in range(count)]
    Client.objects.bulk_create(clients, batch_size=500)
    Patient.objects.bulk_create(_pets(clinic, rng=rng), batch_size=1000)
    return len(clients)


def _client(
    clinic: Clinic, spec: DemoClinic, index: int, *, fake: Faker, rng: random.Random
) -> Client:
    first, last = fake.first_name(), fake.last_name()
    home_delivery = index % 10 == 0  # some store customers not yet linked to the PIMS
    # An agent clinic's records came from its PIMS (Cornerstone ids); an ezyVet
    # clinic's PIMS records come from its first pull instead.
    agent_record = spec.connector in AGENT_CONNECTORS and not home_delivery
    return Client(
        clinic=clinic,
        first_name=first,
        last_name=last,
        email=f"{first}.{last}{rng.randint(1, 99)}@example.org".lower(),
        phone=f"+1 {rng.randint(201, 989)} 555 {rng.randint(100, 199):04d}",
        address_line1=fake.street_address(),
        city=spec.city,
        state=spec.state,
        postcode=spec.postcode,
        country="US",
        customer_ref=f"HD-{spec.slug[:3].upper()}-{10000 + index}" if home_delivery else "",
        pims_id=f"C{20000 + index}" if agent_record else "",
    )


def _pets(clinic: Clinic, *, rng: random.Random) -> list[Patient]:
    """One to three pets for each of the clinic's clients; a client from the PIMS has its
    pets from there too."""
    patients: list[Patient] = []
    today = date.today()
    for client in Client.objects.for_clinic(clinic).only("id", "pims_id"):
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            species = rng.choice(list(SPECIES))
            deceased = rng.random() < 0.04
            weight = Decimal(rng.uniform(3, 40) if species == "Canine" else rng.uniform(2.5, 7))
            patients.append(
                Patient(
                    clinic=clinic,
                    client=client,
                    name=rng.choice(PET_NAMES),
                    species=species,
                    breed=rng.choice(SPECIES[species]),
                    sex=rng.choice(SEXES),
                    birth_date=today - timedelta(days=rng.randint(120, 15 * 365)),
                    weight=weight.quantize(Decimal("0.1")),
                    weight_unit="kg",
                    is_deceased=deceased,
                    deceased_on=today - timedelta(days=rng.randint(1, 300)) if deceased else None,
                    pims_id=f"P{50000 + len(patients)}" if client.pims_id else "",
                )
            )
    return patients


def first_pull(clinic: Clinic, *, say: Callable[[str], None]) -> None:
    """Riverside's first copy of its ezyVet records, through the real pull, from an
    in-process emulator identical to the demo's; the clinic stays pointed at the demo's."""
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
    )
    base_url = integration.base_url
    Integration.objects.filter(pk=integration.pk).update(base_url=site.start())
    try:
        run, _ = ezyvet_pull_start(integration=integration)
        run = ezyvet_pull_run(run_id=run.pk)
    finally:
        Integration.objects.filter(pk=integration.pk).update(base_url=base_url)
        site.stop()
    # The clinic's vet is one of ezyVet's vet users, so prescriptions name the real vet.
    vet_user_id = str(site.records("consult")[0]["vet_id"])
    Vet.objects.filter(clinic=clinic, user__username=f"{clinic.slug}-{Role.VET.value}").update(
        pims_user_id=vet_user_id
    )
    say(f"{clinic.name}: first ezyVet pull {run.get_status_display().lower()}")
