"""The demo's clinics and people: the two clinics and their integrations, a login for every
role of each, and the logins that span clinics (multi-clinic staff, onboarding, Care)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from faker import Faker

from clinics.access import CARE_GROUP, ONBOARDING_GROUP
from clinics.models import Clinic, Connector, Integration, Membership, Role, Vet
from clinics.services import integration_set_credentials

DEMO_PASSWORD = "vetsync-demo-2026"  # noqa: S105 - printed for the demo; never in production


# The ezyVet clinic's vet: a vet user of the demo's emulator (vetsync/pims/emulator/data.py,
# VETS), so the prescriber ezyVet is sent is the vet who approved, by their own name.
EZYVET_VET = ("Helen", "Marsh")


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


def clinic_seed(spec: DemoClinic) -> Clinic:
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
            "base_url": settings.PIMS_EMULATOR_URL if spec.connector == Connector.EZYVET else "",
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


def user_seed(username: str, *, first: str, last: str, is_staff: bool = False) -> Any:
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


def team_seed(
    clinic: Clinic, spec: DemoClinic, *, fake: Faker, rng: random.Random
) -> list[tuple[str, str]]:
    """A staff member, a vet and a clinic admin of the clinic; their logins. An ezyVet clinic's
    vet is one of the emulator's vet users, by name (``first_pull`` maps them to it)."""
    logins: list[tuple[str, str]] = []
    for role in (Role.STAFF, Role.VET, Role.ADMIN):
        username = f"{spec.slug}-{role.value}"
        # Drawn for everyone, so that the rest of the demo's made-up people stay the same.
        first, last = fake.first_name(), fake.last_name()
        if role == Role.VET and spec.connector == Connector.EZYVET:
            first, last = EZYVET_VET
        user = user_seed(username, first=first, last=last)
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
    return logins


def shared_logins_seed(clinics: list[Clinic]) -> list[tuple[str, str]]:
    """Staff at every demo clinic (the clinic switcher), the onboarding team and Care."""
    logins: list[tuple[str, str]] = []
    both = user_seed("multi-clinic-staff", first="Sam", last="Rivera")
    for clinic in clinics:
        Membership.objects.get_or_create(user=both, clinic=clinic, defaults={"role": Role.STAFF})
    logins.append(("multi-clinic-staff", "Staff at both clinics (clinic switcher)"))

    onboarding = user_seed("onboarding", first="Olivia", last="Park", is_staff=True)
    onboarding.groups.add(Group.objects.get(name=ONBOARDING_GROUP))
    logins.append(("onboarding", "Onboarding team (/admin/)"))
    care = user_seed("care", first="Priya", last="Shah")
    care.groups.add(Group.objects.get(name=CARE_GROUP))
    logins.append(("care", "Pet Owner Care (/care/)"))
    return logins
