"""The WriteBack soak's clinic (on the ezyVet emulator, WriteBack on) and the driver that
takes its prescriptions through approve -> ship -> ship -> cancel."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from vetsync.pims.emulator import EzyVetEmulator

# --- the clinic and the prescriptions' lives ---------------------------------------------------


@dataclass
class Clinic:
    clinic: Any
    vet: Any
    vet_user: Any
    patients: list[Any]
    products: list[Any]


def soak_zone() -> str:
    """A zone whose date is not UTC's for the next hour, whatever time the soak runs: a date
    computed in the server's zone (UTC) instead of the clinic's then lands on another day."""
    import datetime as dt

    hour = dt.datetime.now(dt.UTC).hour
    return "Pacific/Pago_Pago" if hour < 10 else "Pacific/Kiritimati"  # UTC-11, UTC+14


def make_clinic(site: EzyVetEmulator, slug: str) -> Clinic:
    """A clinic on ezyVet with WriteBack on, as tests/prescriptions/conftest.py sets one up:
    credentials uploaded, the vet's ezyVet user id, pets linked to the emulator's animals."""
    from django.contrib.auth import get_user_model

    from clinics.models import Clinic as ClinicModel
    from clinics.models import Connector, Integration, Membership, Role, Vet
    from clinics.services import integration_connect_ezyvet
    from prescriptions.models import Product, ProductKind
    from records.models import Client, Patient

    clinic = ClinicModel.objects.create(
        name=f"Soak {slug}",
        slug=slug,
        writeback_enabled=True,
        timezone=os.environ.get("SOAK_TIMEZONE") or soak_zone(),
    )
    integration = Integration.objects.create(
        clinic=clinic, connector=Connector.EZYVET, base_url=site.base_url
    )
    check = integration_connect_ezyvet(integration=integration, text=site.credentials.as_text())
    if not check.ok:
        raise RuntimeError(f"The emulator refused the credentials: {check.error}")
    vet_user = get_user_model().objects.create_user(f"{slug}-vet", password=None)
    Membership.objects.create(user=vet_user, clinic=clinic, role=Role.VET)
    vet = Vet.objects.create(
        clinic=clinic,
        user=vet_user,
        first_name="Soak",
        last_name="Vet",
        pims_user_id=str(site.records("consult")[0]["vet_id"]),
    )
    owners: dict[str, Any] = {}
    patients = []
    for animal in site.records("animal"):
        if animal["is_dead"] == "1" or animal["active"] != "1":
            continue
        contact = str(animal["contact_id"])
        if contact not in owners:
            owners[contact] = Client.objects.create(
                clinic=clinic, first_name="Owner", last_name=contact, pims_id=contact
            )
        patients.append(
            Patient.objects.create(
                clinic=clinic,
                client=owners[contact],
                name=str(animal["name"]) or "Pet",
                pims_id=str(animal["id"]),
            )
        )
    products = [
        Product.objects.get_or_create(
            sku=sku, defaults={"name": name, "kind": ProductKind.RX_MEDICATION, "price": price}
        )[0]
        for sku, name, price in (
            ("CARP-75", "Carprofen 75 mg chewable", "0.85"),
            ("APOQ-16", "Apoquel 16 mg", "2.40"),
        )
    ]
    return Clinic(clinic, vet, vet_user, patients, products)


@dataclass
class Driver:
    """Each prescription's life, pipelined: step t approves batch t, ships batch t-1 (first
    shipment) and t-2 (second), and cancels batch t-3, each action its own transaction."""

    world: Clinic
    count: int
    batch: int
    on_action: Any = None  # called after every action (the bench's beat and chaos)
    pace: float = 0.0  # at most this many actions a second (0: as fast as they commit)
    rxs: list[Any] = field(default_factory=list)
    actions: int = 0
    elapsed: float = 0.0
    started: float = 0.0

    def run(self) -> None:
        self.started = started = time.monotonic()
        batches = [
            range(start, min(start + self.batch, self.count))
            for start in range(0, self.count, self.batch)
        ]
        for step in range(len(batches) + 3):
            if step < len(batches):
                for i in batches[step]:
                    self.rxs.append(self.approve(i))
                    self.done()
            for lag, act in ((1, self.ship), (2, self.ship), (3, self.cancel)):
                if 0 <= step - lag < len(batches):
                    for i in batches[step - lag]:
                        act(self.rxs[i])
                        self.done()
        self.elapsed = time.monotonic() - started

    def done(self) -> None:
        self.actions += 1
        if self.on_action is not None:
            self.on_action()
        if self.pace:
            ahead = self.started + self.actions / self.pace - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)

    def approve(self, i: int) -> Any:
        from prescriptions.services import ItemSpec, prescription_create

        w = self.world
        products = w.products if i % 2 else w.products[:1]
        return prescription_create(
            clinic=w.clinic,
            patient=w.patients[i % len(w.patients)],
            vet=w.vet,
            items=[
                ItemSpec(product=p, quantity=30, refills=2, instructions="One daily with food")
                for p in products
            ],
            actor=w.vet_user,
            approve=True,
        )

    def ship(self, rx: Any) -> None:
        from prescriptions.services import LineSpec, order_place, order_ship

        items = list(rx.items.select_related("product"))
        order = order_place(
            clinic=self.world.clinic,
            patient=rx.patient,
            lines=[LineSpec(product=it.product, quantity=30, prescription_item=it) for it in items],
            actor=self.world.vet_user,
        )
        order_ship(order=order, actor=self.world.vet_user, carrier="UPS", tracking_number="1Z")

    def cancel(self, rx: Any) -> None:
        from prescriptions.services import prescription_items_end

        prescription_items_end(
            prescription=rx, actor=self.world.vet_user, reason="Soak: course finished"
        )
