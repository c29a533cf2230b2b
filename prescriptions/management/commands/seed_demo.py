"""Create the demo world: two clinics, a login per role, clients, pets and store customers,
the pharmacy's catalogue, and prescriptions, Rx requests and orders in every state.

Safe to run twice: everything is looked up by a natural key first, clients are only generated
for a clinic that has none, and prescriptions only for a clinic that has none. Prescriptions,
requests and orders go through ``prescriptions.services``, so their audit rows and WriteBack
outbox rows exist as they would in use. It lives in the top app layer because it touches every
app.

Riverside (ezyVet) takes its first copy from an in-process emulator built like the one
``scripts/run.sh`` serves (same size and seed, so the same records): its prescriptions are for
pets ezyVet knows, and the Celery worker delivers them to the running emulator.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from faker import Faker

from clinics.access import CARE_GROUP, ONBOARDING_GROUP
from clinics.models import AGENT_CONNECTORS, Clinic, Connector, Integration, Membership, Role, Vet
from clinics.services import integration_set_credentials
from prescriptions import writeback
from prescriptions.models import (
    Channel,
    Order,
    Prescription,
    Product,
    ProductKind,
    RxRequest,
    WritebackItem,
)
from prescriptions.services import (
    ItemSpec,
    LineSpec,
    order_cancel,
    order_hold,
    order_place,
    order_ship,
    prescription_create,
    prescription_items_end,
    prescription_mark_paid,
    rx_request_approve,
    rx_request_decline,
    rx_request_submit,
)
from records.models import Client, Patient
from records.pulls import ezyvet_pull_run, ezyvet_pull_start

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


# The demo's ezyVet emulator as scripts/run.sh starts it; the same size and seed give the same
# records, so what Riverside copies here is what the running emulator holds.
EMULATOR_CLIENTS = 500
EMULATOR_SEED = 1

RX, DIET, OTC = ProductKind.RX_MEDICATION, ProductKind.RX_NUTRITION, ProductKind.OTC


@dataclass(frozen=True)
class DemoProduct:
    sku: str
    name: str
    kind: str
    price: str
    unit: str = "tablet"
    compounded: bool = False


CATALOGUE = [
    DemoProduct("CARP-75", "Carprofen 75 mg caplets", RX, "0.85", "caplet"),
    DemoProduct("CARP-100C", "Carprofen 100 mg chewable tablets", RX, "1.05"),
    DemoProduct("APOQ-5.4", "Apoquel (oclacitinib) 5.4 mg tablets", RX, "1.95"),
    DemoProduct("APOQ-16", "Apoquel (oclacitinib) 16 mg tablets", RX, "2.40"),
    DemoProduct("GABA-100", "Gabapentin 100 mg capsules", RX, "0.45", "capsule"),
    DemoProduct("GABA-300", "Gabapentin 300 mg capsules", RX, "0.65", "capsule"),
    DemoProduct("BRAV-L", "Bravecto chew for dogs 20-40 kg (12 weeks)", RX, "62.00", "chew"),
    DemoProduct("SIMP-TRIO-M", "Simparica Trio chewables 10.1-20 kg, 3 pack", RX, "78.00", "pack"),
    DemoProduct("THYRO-0.5", "Thyroxine (levothyroxine) 0.5 mg tablets", RX, "0.32"),
    DemoProduct("METHIM-2.5", "Methimazole 2.5 mg tablets", RX, "0.40"),
    DemoProduct("VETM-5", "Vetmedin (pimobendan) 5 mg chewable tablets", RX, "1.85"),
    DemoProduct("PRED-5", "Prednisolone 5 mg tablets", RX, "0.20"),
    DemoProduct("CEREN-24", "Cerenia (maropitant) 24 mg tablets", RX, "5.10"),
    DemoProduct(
        "HILLS-KD-K9",
        "Hill's Prescription Diet k/d Kidney Care canine, 17.6 lb",
        DIET,
        "89.99",
        "bag",
    ),
    DemoProduct(
        "HILLS-CD-FEL",
        "Hill's Prescription Diet c/d Multicare feline, 8.5 lb",
        DIET,
        "54.99",
        "bag",
    ),
    DemoProduct(
        "RC-RENAL-K9",
        "Royal Canin Veterinary Diet Renal Support canine, 17.6 lb",
        DIET,
        "92.99",
        "bag",
    ),
    DemoProduct(
        "RC-GI-LF-K9", "Royal Canin Gastrointestinal Low Fat canine, 13.2 lb", DIET, "79.99", "bag"
    ),
    DemoProduct(
        "PPVD-UR-FEL",
        "Purina Pro Plan Veterinary Diets UR Urinary St/Ox feline, 6 lb",
        DIET,
        "39.99",
        "bag",
    ),
    DemoProduct("DASUQ-MSM-L", "Dasuquin with MSM chewable tablets, large dogs", OTC, "1.10"),
    DemoProduct("DENAM-225", "Denamarin 225 mg tablets", OTC, "1.35"),
    DemoProduct("WELACTIN-8", "Welactin omega-3 fish oil for dogs, 8 oz", OTC, "24.99", "bottle"),
    DemoProduct(
        "FORTIFLORA-K9", "Purina FortiFlora probiotic for dogs, 30 sachets", OTC, "32.99", "box"
    ),
    DemoProduct("COSEQ-FEL", "Cosequin sprinkle capsules for cats", OTC, "0.55", "capsule"),
    DemoProduct(
        "WW-METHIM-TD",
        "Methimazole 5 mg/0.1 mL transdermal gel (Wedgewood)",
        RX,
        "0.95",
        "mL",
        True,
    ),
    DemoProduct(
        "WW-GABA-SUSP",
        "Gabapentin 50 mg/mL oral suspension, fish flavour (Wedgewood)",
        RX,
        "0.60",
        "mL",
        True,
    ),
    DemoProduct(
        "WW-KBR-250",
        "Potassium bromide 250 mg/mL oral solution (Wedgewood)",
        RX,
        "0.35",
        "mL",
        True,
    ),
]


@dataclass
class DemoStaff:
    """Who does what in a clinic's scenario: the vet approves, the staff member orders."""

    clinic: Clinic
    vet: Vet
    vet_user: Any
    staff: Any


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

        products = self._catalogue()
        for clinic, spec in zip(clinics, CLINICS, strict=True):
            if spec.connector == Connector.EZYVET:
                self._first_pull(clinic)
            self._pharmacy(clinic, spec, products, rng=rng)

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
            # An agent clinic's records came from its PIMS (Cornerstone ids); an ezyVet
            # clinic's PIMS records come from its first pull instead.
            agent_record = spec.connector in AGENT_CONNECTORS and not home_delivery
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
                    pims_id=f"C{20000 + index}" if agent_record else "",
                )
            )
        Client.objects.bulk_create(clients, batch_size=500)
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
                        deceased_on=today - timedelta(days=rng.randint(1, 300))
                        if deceased
                        else None,
                        pims_id=f"P{50000 + len(patients)}" if client.pims_id else "",
                    )
                )
        Patient.objects.bulk_create(patients, batch_size=1000)
        return len(clients)

    # --- the pharmacy: catalogue, prescriptions, requests, orders -----------------------------

    def _catalogue(self) -> dict[str, Product]:
        products = {}
        for spec in CATALOGUE:
            product, _ = Product.objects.get_or_create(
                sku=spec.sku,
                defaults={
                    "name": spec.name,
                    "kind": spec.kind,
                    "price": Decimal(spec.price),
                    "unit": spec.unit,
                    "is_compounded": spec.compounded,
                },
            )
            products[spec.sku] = product
        return products

    def _first_pull(self, clinic: Clinic) -> None:
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
        self.stdout.write(f"{clinic.name}: first ezyVet pull {run.get_status_display().lower()}")

    def _pharmacy(
        self, clinic: Clinic, spec: DemoClinic, products: dict[str, Product], *, rng: random.Random
    ) -> None:
        """Prescriptions in every state, Rx requests, orders placed, held, shipped and
        cancelled; for the agent clinic, the agent's answers on the writeback feed."""
        if Prescription.objects.for_clinic(clinic).exists():
            return
        users = get_user_model().objects
        vet_user = users.get(username=f"{spec.slug}-{Role.VET.value}")
        team = DemoStaff(
            clinic=clinic,
            vet=Vet.objects.get(clinic=clinic, user=vet_user),
            vet_user=vet_user,
            staff=users.get(username=f"{spec.slug}-{Role.STAFF.value}"),
        )
        live = Patient.objects.filter(
            clinic=clinic, is_deceased=False, is_active=True, client__merged_into__isnull=True
        ).order_by("pk")
        # Written back: pets the PIMS knows (it files a prescription under its own ids).
        linked = live.exclude(pims_id="").exclude(client__pims_id="")
        dogs = list(linked.filter(species="Canine")[:12]) or list(
            live.filter(species="Canine")[:12]
        )
        cats = list(linked.filter(species="Feline")[:4]) or list(live.filter(species="Feline")[:4])
        if not dogs or not cats:
            self.stdout.write(f"{clinic.name}: not enough pets for the prescriptions demo")
            return

        def dog(n: int) -> Patient:
            return dogs[n % len(dogs)]  # a small demo clinic gives one dog several stories

        def cat(n: int) -> Patient:
            return cats[n % len(cats)]

        p = products
        today = timezone.localdate()

        def approved(pet: Patient, *items: tuple[str, int, int, str], **kw: Any) -> Prescription:
            return self._prescribe(team, pet, items, products=p, approve=True, **kw)

        # Arthritis: carprofen with Dasuquin in the treatment plan; shipped twice, one to ship.
        arthritis = approved(
            dog(0),
            ("CARP-75", 60, 5, "Give 1 caplet by mouth every 12 hours with food."),
            ("DASUQ-MSM-L", 30, 5, "Give 1 chewable tablet by mouth once daily."),
        )
        self._ship(team, self._order(team, arthritis), today - timedelta(days=40), rng)
        self._ship(team, self._order(team, arthritis), today - timedelta(days=10), rng)
        self._order(team, arthritis)
        # Allergies: Apoquel shipped once; the refill is on hold.
        allergy = approved(
            dog(1),
            ("APOQ-16", 30, 3, "Give 1 tablet by mouth twice daily for 14 days, then once daily."),
        )
        self._ship(team, self._order(team, allergy), today - timedelta(days=20), rng)
        order_hold(
            order=self._order(team, allergy),
            actor=team.staff,
            reason="Card declined; waiting for the owner to update the payment details.",
        )
        # Kidney disease: a prescription diet, shipped this week.
        kidney = approved(
            dog(2),
            (
                "HILLS-KD-K9",
                1,
                6,
                "Feed as the sole diet; change over from the old food in 7 days.",
            ),
        )
        self._ship(team, self._order(team, kidney), today - timedelta(days=5), rng)
        # Flea and tick: approved, nothing ordered yet (Pending).
        approved(dog(3), ("BRAV-L", 1, 3, "Give 1 chew by mouth with food every 12 weeks."))
        # Declined by the vet before anything was dispensed.
        pain = approved(
            dog(4), ("GABA-100", 90, 2, "Give 1 capsule by mouth every 8 hours as needed for pain.")
        )
        prescription_items_end(
            prescription=pain, actor=team.vet_user, reason="Changed to a long-acting injection."
        )
        # Dispensed, then cancelled at the owner's request.
        thyroid = approved(dog(5), ("THYRO-0.5", 60, 5, "Give 1 tablet by mouth every 12 hours."))
        self._ship(team, self._order(team, thyroid), today - timedelta(days=30), rng)
        prescription_items_end(
            prescription=thyroid,
            actor=team.vet_user,
            reason="The owner moved to a pharmacy nearer their new home.",
            by_client=True,
        )
        # Compounded by Wedgewood: shipped, never written back.
        gel = approved(
            cat(0),
            (
                "WW-METHIM-TD",
                30,
                2,
                "Apply 0.1 mL to the inner ear flap every 12 hours; wear gloves.",
            ),
        )
        self._ship(team, self._order(team, gel), today - timedelta(days=12), rng)
        # Ordered through the clinic's online store.
        urinary = approved(
            cat(1), ("PPVD-UR-FEL", 1, 5, "Feed as the sole diet."), channel=Channel.STORE
        )
        self._ship(team, self._order(team, urinary), today - timedelta(days=3), rng)
        # An eConnect order: filled, never written back.
        heart = approved(
            dog(6),
            ("VETM-5", 60, 5, "Give 1 tablet by mouth every 12 hours, an hour before food."),
            channel=Channel.ECONNECT,
        )
        self._ship(team, self._order(team, heart), today - timedelta(days=7), rng)
        # Cancelled before it shipped.
        nausea = approved(
            dog(7), ("CEREN-24", 4, 0, "Give 1 tablet by mouth once daily for up to 4 days.")
        )
        order_cancel(
            order=self._order(team, nausea),
            actor=team.staff,
            reason="The owner collected it at the clinic instead.",
        )
        # Written by staff, waiting for a vet's approval.
        self._prescribe(
            team,
            dog(8),
            [("PRED-5", 20, 0, "Give 2 tablets daily for 5 days, then 1 daily for 5 days.")],
            products=p,
            approve=False,
        )
        # An OTC product sold on its own: no prescription, never written back.
        self._ship(
            team,
            order_place(
                clinic=clinic,
                patient=dog(9),
                lines=[LineSpec(product=p["WELACTIN-8"], quantity=1)],
                actor=team.staff,
            ),
            today - timedelta(days=2),
            rng,
        )
        if spec.connector == Connector.EZYVET:
            self._unlinked_prescription(team, live, p)
        requests = self._rx_requests(team, dog, cat, p)
        if writeback.writeback_target(clinic) == WritebackItem.Target.AGENT:
            self._agent_answers(team)
        queued = WritebackItem.objects.filter(clinic=clinic).count()
        self.stdout.write(
            f"{clinic.name}: {Prescription.objects.for_clinic(clinic).count()} prescriptions, "
            f"{requests} Rx requests, {Order.objects.for_clinic(clinic).count()} orders, "
            f"{queued} writebacks"
        )

    def _prescribe(
        self,
        team: DemoStaff,
        pet: Patient,
        items: Any,
        *,
        products: dict[str, Product],
        approve: bool,
        channel: str = Channel.PORTAL,
    ) -> Prescription:
        return prescription_create(
            clinic=team.clinic,
            patient=pet,
            vet=team.vet,
            items=[
                ItemSpec(product=products[sku], quantity=qty, refills=refills, instructions=text)
                for sku, qty, refills, text in items
            ],
            actor=team.vet_user if approve else team.staff,
            approve=approve,
            channel=channel,
        )

    def _order(self, team: DemoStaff, prescription: Prescription) -> Order:
        """One fill of every item of the prescription, through the prescription's channel."""
        return order_place(
            clinic=team.clinic,
            patient=prescription.patient,
            lines=[
                LineSpec(product=item.product, quantity=item.quantity, prescription_item=item)
                for item in prescription.items.select_related("product")
            ],
            actor=team.staff,
            channel=prescription.channel,
        )

    def _ship(self, team: DemoStaff, order: Order, on: date, rng: random.Random) -> Order:
        carrier = rng.choice(["UPS", "USPS", "FedEx"])
        tracking = {
            "UPS": f"1Z{rng.randint(10**15, 10**16 - 1)}",
            "USPS": f"9400{rng.randint(10**17, 10**18 - 1)}",
            "FedEx": f"{rng.randint(10**11, 10**12 - 1)}",
        }[carrier]
        return order_ship(
            order=order, actor=team.staff, shipped_on=on, carrier=carrier, tracking_number=tracking
        )

    def _unlinked_prescription(
        self, team: DemoStaff, live: Any, products: dict[str, Product]
    ) -> None:
        """A store customer's pet ezyVet does not know yet: its writeback fails with the reason
        and waits on the monitor for a retry once the records are linked."""
        pet = live.filter(pims_id="", client__pims_id="").exclude(client__customer_ref="").first()
        if pet is None:
            return
        self._prescribe(
            team,
            pet,
            [("DENAM-225", 30, 2, "Give 1 tablet by mouth daily on an empty stomach.")],
            products=products,
            approve=True,
        )

    def _rx_requests(
        self,
        team: DemoStaff,
        dog: Callable[[int], Patient],
        cat: Callable[[int], Patient],
        p: dict[str, Product],
    ) -> int:
        clinic = team.clinic
        rx_request_submit(
            clinic=clinic,
            patient=dog(10),
            product=p["SIMP-TRIO-M"],
            quantity=2,
            owner_note="Same as last year please; she weighs 15 kg now.",
        )
        # Near expiry: waiting 41 of its 45 days. The service stamps "now"; a demo needs an
        # old one, so only its dates are moved back.
        old = rx_request_submit(
            clinic=clinic,
            patient=cat(2),
            product=p["HILLS-CD-FEL"],
            quantity=1,
            owner_note="Running low on his urinary food.",
        )
        asked = timezone.now() - timedelta(days=41)
        RxRequest.objects.filter(pk=old.pk).update(
            created_at=asked, expires_at=asked + (old.expires_at - old.created_at)
        )
        # Approved, waiting for the owner to pay (then it goes to the PIMS).
        unpaid = rx_request_submit(
            clinic=clinic, patient=dog(11), product=p["APOQ-5.4"], quantity=30
        )
        rx_request_approve(
            rx_request=unpaid,
            actor=team.vet_user,
            refills=2,
            instructions="Give 1 tablet by mouth once daily.",
            owner_message="Approved for three months; we will recheck her skin in the spring.",
        )
        # Approved and paid: sent.
        paid = rx_request_submit(
            clinic=clinic, patient=dog(1), product=p["RC-GI-LF-K9"], quantity=1
        )
        prescription = rx_request_approve(
            rx_request=paid,
            actor=team.vet_user,
            refills=3,
            instructions="Feed as the sole diet while the gut settles.",
        )
        prescription_mark_paid(prescription=prescription, actor=team.staff)
        declined = rx_request_submit(
            clinic=clinic,
            patient=cat(3),
            product=p["GABA-100"],
            quantity=10,
            owner_note="For her vet visits, she gets very stressed.",
        )
        rx_request_decline(
            rx_request=declined,
            actor=team.vet_user,
            reason="Not seen in over a year.",
            owner_message="Please book a check-up; we can prescribe it at the visit.",
        )
        return 5

    def _agent_answers(self, team: DemoStaff) -> None:
        """The clinic's agent has pulled the feed: it wrote most lines, Cornerstone refused
        one, another failed and staff retried it, and the newest waits for the next pull."""
        clinic = team.clinic
        rows = list(
            WritebackItem.objects.filter(
                clinic=clinic,
                target=WritebackItem.Target.AGENT,
                status=WritebackItem.Status.PENDING,
            ).order_by("pk")
        )
        if len(rows) < 4:
            return
        *written, refused, busy, _waiting = rows
        for row in written:
            writeback.agent_ack(clinic=clinic, item_id=row.pk, ok=True)
        patient = refused.payload.get("patient_pims_id") or "(no id)"
        writeback.agent_ack(
            clinic=clinic,
            item_id=refused.pk,
            ok=False,
            error=f"Cornerstone refused the line item: patient {patient} is marked inactive.",
        )
        writeback.agent_ack(
            clinic=clinic,
            item_id=busy.pk,
            ok=False,
            error="Cornerstone was locked by another workstation; the line item was not posted.",
        )
        writeback.writeback_retry(item=busy, actor=team.staff)
