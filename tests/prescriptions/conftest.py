"""The prescriptions world: a catalogue, an ezyVet clinic on a real emulator socket with
WriteBack on, and an agent clinic (SyncVet) whose writebacks go on the feed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.test import override_settings

from clinics import prescribers
from clinics.models import Connector, Integration
from clinics.services import integration_connect_ezyvet, integration_issue_agent_token
from prescriptions.models import Channel, Product, ProductKind
from prescriptions.services import ItemSpec, prescription_create
from prescriptions.writeback import delivery
from records.models import Patient
from tests.conftest import World, clear_own_cache
from tests.factories import ClientFactory, PatientFactory
from vetsync.pims.emulator import EzyVetEmulator


@dataclass
class Catalogue:
    carprofen: Product  # prescription medication
    renal_diet: Product  # Rx nutrition
    dasuquin: Product  # OTC
    compounded: Product  # Wedgewood compounded medication
    apoquel: Product  # another prescription medication


@pytest.fixture
def catalogue(db: None) -> Catalogue:
    def product(sku: str, name: str, kind: str, price: str, **extra: Any) -> Product:
        return Product.objects.create(sku=sku, name=name, kind=kind, price=Decimal(price), **extra)

    return Catalogue(
        carprofen=product("CARP-75", "Carprofen 75 mg chewable", ProductKind.RX_MEDICATION, "0.85"),
        renal_diet=product(
            "RENAL-K9",
            "Renal support canine diet 8 lb",
            ProductKind.RX_NUTRITION,
            "42.00",
            unit="bag",
        ),
        dasuquin=product("DASUQUIN-L", "Dasuquin large dog chewable", ProductKind.OTC, "1.10"),
        compounded=product(
            "WW-METHIMAZOLE",
            "Methimazole transdermal gel (compounded)",
            ProductKind.RX_MEDICATION,
            "0.95",
            is_compounded=True,
        ),
        apoquel=product("APOQ-16", "Apoquel 16 mg", ProductKind.RX_MEDICATION, "2.40"),
    )


@pytest.fixture
def site() -> Iterator[EzyVetEmulator]:
    emulator = EzyVetEmulator(clients=12, seed=5, rate_per_minute=0, endpoint_rate_per_minute=0)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture(autouse=True)
def _fresh_connectors() -> Iterator[None]:
    # Each test has its own emulator: never reuse a worker's cached connector across tests.
    delivery._clients.clear()
    clear_own_cache()  # ezyVet's cached user and consult lists belong to the test's emulator
    prescribers._list_clients.clear()
    with override_settings(WRITEBACK_BACKOFF_BASE=0.01, WRITEBACK_BACKOFF_MAX=0.05):
        yield
    delivery._clients.clear()


@pytest.fixture
def ezyvet_clinic(world: World, site: EzyVetEmulator) -> Integration:
    """Clinic A on ezyVet with WriteBack on; its vet is an ezyVet vet user."""
    clinic = world.a.clinic
    clinic.writeback_enabled = True
    clinic.save()
    integration = clinic.integration
    integration.connector = Connector.EZYVET
    integration.base_url = site.base_url
    integration.save()
    assert integration_connect_ezyvet(integration=integration, text=site.credentials.as_text()).ok
    consult = site.records("consult")[0]
    world.a.vet.pims_user_id = str(consult["vet_id"])
    world.a.vet.save()
    integration.refresh_from_db()
    return integration


@pytest.fixture
def ezy_pet(world: World, site: EzyVetEmulator, ezyvet_clinic: Integration) -> Patient:
    """A pet of clinic A linked to an animal (and its owner) in the emulated ezyVet."""
    animal = site.record("animal", site.records("consult")[0]["animal_id"])
    owner = ClientFactory(clinic=world.a.clinic, pims_id=str(animal["contact_id"]))
    return PatientFactory(client=owner, name=animal["name"] or "Biscuit", pims_id=str(animal["id"]))


@pytest.fixture
def agent_clinic(world: World) -> tuple[Integration, str]:
    """Clinic B on SyncVet with WriteBack on, and its agent's bearer token."""
    clinic = world.b.clinic
    clinic.writeback_enabled = True
    clinic.save()
    integration = clinic.integration
    integration.connector = Connector.SYNCVET
    integration.save()
    token = integration_issue_agent_token(integration=integration, actor=None)
    return integration, token


@pytest.fixture
def agent_pet(world: World, agent_clinic: tuple[Integration, str]) -> Patient:
    owner = ClientFactory(clinic=world.b.clinic, pims_id="C-2001")
    return PatientFactory(client=owner, name="Pepper", pims_id="P-3001")


def rx(world_clinic: Any, patient: Patient, *products: Product, approve: bool = True, **kw: Any):
    """A prescription by the clinic's vet for ``patient`` with one item per product."""
    return prescription_create(
        clinic=world_clinic.clinic,
        patient=patient,
        vet=world_clinic.vet,
        items=[
            ItemSpec(
                product=p,
                quantity=30,
                refills=kw.pop("refills", 2) if i == len(products) - 1 else 2,
                instructions="One daily with food",
            )
            for i, p in enumerate(products)
        ],
        actor=world_clinic.vet_user if approve else world_clinic.staff,
        approve=approve,
        channel=kw.pop("channel", Channel.PORTAL),
        **kw,
    )


@pytest.fixture
def pet(world: World) -> Patient:
    owner = ClientFactory(
        clinic=world.a.clinic, first_name="Dana", last_name="Whitfield", email="dana@example.org"
    )
    return PatientFactory(client=owner, name="Biscuit")


@pytest.fixture
def other_pet(world: World) -> Patient:
    owner = ClientFactory(clinic=world.a.clinic, first_name="Omar", last_name="Quill")
    return PatientFactory(client=owner, name="Pickle")
