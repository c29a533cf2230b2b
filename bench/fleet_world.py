"""The fleet bench's world: how big each clinic is, the clinics themselves (ezyVet sites and
agent clinics) and what the bench needs to prescribe for them.

Sizes are pinned by seed: client counts are log-normal with a median of 1,000 (sigma 0.9, so
the mean is about 1,500) capped at 10,000; a smaller fleet is the first N clinics of the full
one, so 200 sites are the same 200 in every run. ``scale`` shrinks every count (quick runs).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field
from typing import Any

MEDIAN_CLIENTS = 1000
SIGMA = 0.9
CAP = 10_000
FULL_FLEET = 1000


def client_counts(count: int, *, seed: int, scale: float = 1.0) -> list[int]:
    """The first ``count`` clinics' client counts of the full fleet drawn from ``seed``."""
    rng = random.Random(seed)
    full = [
        min(CAP, round(rng.lognormvariate(math.log(MEDIAN_CLIENTS), SIGMA)))
        for _ in range(max(count, FULL_FLEET))
    ]
    return [max(10, round(n * scale)) for n in full[:count]]


@dataclass
class EzyVetClinic:
    index: int
    clients: int
    clinic_id: int
    integration_id: int
    wave: int
    site: int  # the emulator's site number (1-based)
    live_at: float | None = None  # monotonic time its integration went live
    vet: Any = None  # the VetSync Vet mapped to the site's vet user (for writebacks)
    vet_user: Any = None
    patient_ids: list[int] = field(default_factory=list)


@dataclass
class AgentClinic:
    index: int
    clients: int
    clinic_id: int
    token: str


def ezyvet_clinics_create(
    counts: list[int], *, sites_url: str, interval: dt.timedelta, waves: int
) -> list[EzyVetClinic]:
    """One clinic a site, WriteBack on, its integration onboarding (no credentials yet)."""
    from clinics.models import Clinic, Connector, Integration

    made = []
    for index, clients in enumerate(counts):
        clinic = Clinic.objects.create(
            name=f"Fleet ezyVet {index:04d}", slug=f"fleet-ezy-{index}", writeback_enabled=True
        )
        integration = Integration.objects.create(
            clinic=clinic,
            connector=Connector.EZYVET,
            base_url=f"{sites_url}/site/{index + 1}",
            sync_interval=interval,
            expected_interval=3 * interval,
        )
        made.append(
            EzyVetClinic(index, clients, clinic.pk, integration.pk, index % waves, index + 1)
        )
    return made


def ezyvet_onboard(clinic: EzyVetClinic, *, seed: int) -> None:
    """What the onboarding team does: upload the site's credentials file, mark it live (the
    first copy is then due at the next dispatch)."""
    from clinics.models import Integration
    from clinics.services import integration_connect_ezyvet, integration_set_status
    from vetsync.pims.emulator.fleet import site_credentials

    integration = Integration.objects.select_related("clinic").get(pk=clinic.integration_id)
    trial = integration_connect_ezyvet(
        integration=integration, text=site_credentials(clinic.site, seed=seed).as_text()
    )
    if not trial.ok:
        raise RuntimeError(f"Site {clinic.index} refused its credentials: {trial.error}")
    integration_set_status(integration=integration, status=Integration.Status.LIVE)


def agent_clinics_create(counts: list[int]) -> list[AgentClinic]:
    """One SyncVet clinic each, live, with its agent token."""
    from clinics.models import Clinic, Connector, Integration
    from clinics.services import integration_issue_agent_token

    made = []
    for index, clients in enumerate(counts):
        clinic = Clinic.objects.create(name=f"Fleet agent {index:04d}", slug=f"fleet-agent-{index}")
        integration = Integration.objects.create(
            clinic=clinic, connector=Connector.SYNCVET, status=Integration.Status.LIVE
        )
        token = integration_issue_agent_token(integration=integration, actor=None)
        made.append(AgentClinic(index, clients, clinic.pk, token))
    return made


def prescriber_ready(clinic: EzyVetClinic) -> bool:
    """After its first copy: a vet mapped to one of the site's vet users (asked of ezyVet, as
    the Prescribers page does) and the pets to prescribe for. False until the copy is in."""
    from django.contrib.auth import get_user_model

    from clinics.models import Integration, Membership, Role, Vet
    from clinics.prescribers import ezyvet_vets
    from records.models import Patient

    patients = list(
        Patient.objects.filter(clinic_id=clinic.clinic_id, is_deceased=False)
        .exclude(pims_id="")
        .values_list("pk", flat=True)[:500]
    )
    if not patients:
        return False
    integration = Integration.objects.select_related("clinic").get(pk=clinic.integration_id)
    vets = ezyvet_vets(integration=integration)
    if not vets:
        return False
    user, _ = get_user_model().objects.get_or_create(username=f"fleet-vet-{clinic.index}")
    Membership.objects.get_or_create(user=user, clinic_id=clinic.clinic_id, role=Role.VET)
    clinic.vet, _ = Vet.objects.get_or_create(
        clinic_id=clinic.clinic_id,
        user=user,
        defaults={
            "first_name": "Fleet",
            "last_name": f"Vet {clinic.index}",
            "pims_user_id": str(vets[0].user_id),
        },
    )
    clinic.vet_user = user
    clinic.patient_ids = patients
    return True


def products() -> list[Any]:
    from prescriptions.models import Product, ProductKind

    return [
        Product.objects.get_or_create(
            sku=sku, defaults={"name": name, "kind": ProductKind.RX_MEDICATION, "price": price}
        )[0]
        for sku, name, price in (
            ("CARP-75", "Carprofen 75 mg chewable", "0.85"),
            ("APOQ-16", "Apoquel 16 mg", "2.40"),
        )
    ]


def prescribe(clinic: EzyVetClinic, rng: random.Random, catalogue: list[Any]) -> None:
    """One prescription approved by the clinic's vet: one WriteBack row (a POST to ezyVet)."""
    from prescriptions.services import ItemSpec, prescription_create
    from records.models import Patient

    patient = Patient.objects.get(pk=rng.choice(clinic.patient_ids))
    prescription_create(
        clinic=patient.clinic,
        patient=patient,
        vet=clinic.vet,
        items=[
            ItemSpec(
                product=rng.choice(catalogue), quantity=30, refills=2, instructions="One daily"
            )
        ],
        actor=clinic.vet_user,
        approve=True,
    )
