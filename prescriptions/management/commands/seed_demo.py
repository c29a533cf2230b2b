"""Create the demo world: two clinics, a login per role, clients, pets and store customers.

Safe to run twice: everything is looked up by a natural key first, and clients are only
generated for a clinic that has none. It lives in the top app layer because it touches every
app.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from faker import Faker

from clinics.access import CARE_GROUP, ONBOARDING_GROUP
from clinics.models import Clinic, Connector, Integration, Membership, Role, Vet
from clinics.services import integration_set_credentials
from records.models import Client, Patient

DEMO_PASSWORD = "vetsync-demo-2026"  # noqa: S105 - printed for the demo; never in production

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


@dataclass(frozen=True)
class DemoClinic:
    slug: str
    name: str
    city: str
    state: str
    postcode: str
    timezone: str
    connector: Connector
    writeback: bool


CLINICS = [
    DemoClinic(
        "riverside",
        "Riverside Animal Hospital",
        "Portland",
        "OR",
        "97205",
        "America/Los_Angeles",
        Connector.EZYVET,
        True,
    ),
    DemoClinic(
        "maple-grove",
        "Maple Grove Veterinary Clinic",
        "Madison",
        "WI",
        "53703",
        "America/Chicago",
        Connector.DATAPOINT,
        True,
    ),
]


class Command(BaseCommand):
    help = "Create demo clinics, a login for every role, and realistic clients and pets."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--clients", type=int, default=300, help="clients per clinic")
        parser.add_argument("--seed", type=int, default=2026)

    @transaction.atomic
    def handle(self, *args: Any, clients: int, seed: int, **options: Any) -> None:
        fake = Faker("en_US")
        fake.seed_instance(seed)
        rng = random.Random(seed)
        logins: list[tuple[str, str]] = []
        clinics = [self._clinic(spec) for spec in CLINICS]

        for clinic, spec in zip(clinics, CLINICS, strict=True):
            for role in (Role.STAFF, Role.VET, Role.ADMIN):
                username = f"{spec.slug}-{role.value}"
                user = self._user(username, first=fake.first_name(), last=fake.last_name())
                Membership.objects.get_or_create(user=user, clinic=clinic, defaults={"role": role})
                if role == Role.VET:
                    Vet.objects.get_or_create(
                        clinic=clinic,
                        user=user,
                        defaults={
                            "first_name": user.first_name,
                            "last_name": user.last_name,
                            "licence_number": f"VET-{rng.randint(10000, 99999)}",
                            "pims_user_id": str(rng.randint(2, 40)),
                        },
                    )
                logins.append((username, f"{role.label} at {clinic.name}"))
            created = self._records(clinic, spec, count=clients, fake=fake, rng=rng)
            self.stdout.write(f"{clinic.name}: {created} clients created")

        both = self._user("multi-clinic-staff", first="Sam", last="Rivera")
        for clinic in clinics:
            Membership.objects.get_or_create(
                user=both, clinic=clinic, defaults={"role": Role.STAFF}
            )
        logins.append(("multi-clinic-staff", "Staff at both clinics (clinic switcher)"))

        onboarding = self._user("onboarding", first="Olivia", last="Park", is_staff=True)
        onboarding.groups.add(Group.objects.get(name=ONBOARDING_GROUP))
        logins.append(("onboarding", "Onboarding team (/admin/)"))
        care = self._user("care", first="Priya", last="Shah")
        care.groups.add(Group.objects.get(name=CARE_GROUP))
        logins.append(("care", "Pet Owner Care (/care/)"))

        self.stdout.write(self.style.SUCCESS(f"\nDemo logins (password for all: {DEMO_PASSWORD}):"))
        for username, what in logins:
            self.stdout.write(f"  {username:<22} {what}")

    def _clinic(self, spec: DemoClinic) -> Clinic:
        clinic, _ = Clinic.objects.get_or_create(
            slug=spec.slug,
            defaults={
                "name": spec.name,
                "city": spec.city,
                "state": spec.state,
                "postcode": spec.postcode,
                "timezone": spec.timezone,
                "writeback_enabled": spec.writeback,
                "address_line1": "100 Main St",
                "phone": "+1 555 0100",
                "email": f"manager@{spec.slug}.example",
            },
        )
        integration, _ = Integration.objects.get_or_create(
            clinic=clinic,
            defaults={
                "connector": spec.connector,
                "status": Integration.Status.LIVE,
                "base_url": settings.PIMS_EMULATOR_URL
                if spec.connector == Connector.EZYVET
                else "",
            },
        )
        if spec.connector == Connector.EZYVET and not integration.has_credentials:
            # The emulator's demo credentials (what `make run` starts it with), so "Sync now"
            # and the hourly pull work out of the box.
            integration_set_credentials(
                integration=integration,
                values={
                    "partner_id": "vetsync-partner",
                    "client_id": "demo-client",
                    "client_secret": "demo-secret",
                    "site_uid": "demo-site",
                },
            )
        return clinic

    def _user(self, username: str, *, first: str, last: str, is_staff: bool = False) -> Any:
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username=username,
            defaults={
                "first_name": first,
                "last_name": last,
                "is_staff": is_staff,
                "email": f"{username}@vetsync.example",
            },
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        return user

    def _records(
        self, clinic: Clinic, spec: DemoClinic, *, count: int, fake: Faker, rng: random.Random
    ) -> int:
        if Client.objects.for_clinic(clinic).exists():
            return 0
        clients = []
        for index in range(count):
            first, last = fake.first_name(), fake.last_name()
            home_delivery = index % 10 == 0  # some store customers not yet linked to the PIMS
            clients.append(
                Client(
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
                    customer_ref=f"HD-{spec.slug[:3].upper()}-{10000 + index}"
                    if home_delivery
                    else "",
                )
            )
        Client.objects.bulk_create(clients, batch_size=500)
        patients = []
        today = date.today()
        for client in Client.objects.for_clinic(clinic).only("id"):
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
                        deceased_on=today - timedelta(days=rng.randint(1, 300))
                        if deceased
                        else None,
                    )
                )
        Patient.objects.bulk_create(patients, batch_size=1000)
        return len(clients)
