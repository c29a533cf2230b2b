"""Create the demo world (``prescriptions.demo``): two clinics, a login per role, clients,
pets and store customers, the pharmacy's catalogue, and prescriptions, Rx requests and orders
in every state.

Safe to run twice: everything is looked up by a natural key first, clients are only generated
for a clinic that has none, and prescriptions only for a clinic that has none. Prescriptions,
requests and orders go through ``prescriptions.services``, so their audit rows and WriteBack
outbox rows exist as they would in use.
"""

from __future__ import annotations

import random
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from faker import Faker

from clinics.models import Connector
from clinics.two_factor.services import demo_devices_enrol
from prescriptions.demo.catalogue import catalogue_seed
from prescriptions.demo.clinics import (
    CLINICS,
    DEMO_PASSWORD,
    clinic_seed,
    shared_logins_seed,
    team_seed,
)
from prescriptions.demo.pharmacy import pharmacy_seed
from prescriptions.demo.records import first_pull, records_seed


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
        say = self.stdout.write
        logins: list[tuple[str, str]] = []
        clinics = [clinic_seed(spec) for spec in CLINICS]

        for clinic, spec in zip(clinics, CLINICS, strict=True):
            logins += team_seed(clinic, spec, fake=fake, rng=rng)
            created = records_seed(clinic, spec, count=clients, fake=fake, rng=rng)
            say(f"{clinic.name}: {created} clients created")
        logins += shared_logins_seed(clinics)

        products = catalogue_seed()
        for clinic, spec in zip(clinics, CLINICS, strict=True):
            if spec.connector == Connector.EZYVET:
                first_pull(clinic, say=say)
            pharmacy_seed(clinic, spec, products, rng=rng, say=say)

        keys = demo_devices_enrol(usernames=[username for username, _ in logins])
        say(self.style.SUCCESS(f"\nDemo logins (password for all: {DEMO_PASSWORD}):"))
        for username, what in logins:
            key = f"  two-factor key {keys[username]}" if username in keys else ""
            say(f"  {username:<22} {what}{key}")
        say(
            "Two-factor: add a key to an authenticator app, or print the current code with "
            "`DEBUG=1 .venv/bin/python manage.py two_factor_code <username>`."
        )
