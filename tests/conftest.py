"""The named test world: two clinics, a staff member and a vet of each, the teams."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client as HttpClient

from clinics.access import CARE_GROUP, ONBOARDING_GROUP
from clinics.models import Clinic, Role
from tests.factories import (
    ClinicFactory,
    IntegrationFactory,
    MembershipFactory,
    UserFactory,
    VetFactory,
)


@dataclass
class ClinicWorld:
    clinic: Clinic
    staff: Any
    vet_user: Any
    vet: Any


@dataclass
class World:
    a: ClinicWorld
    b: ClinicWorld
    onboarding: Any
    care: Any


def _clinic_world(slug: str, name: str) -> ClinicWorld:
    clinic = ClinicFactory(slug=slug, name=name)
    IntegrationFactory(clinic=clinic)
    staff = UserFactory(username=f"{slug}-staff")
    MembershipFactory(user=staff, clinic=clinic, role=Role.STAFF)
    vet_user = UserFactory(username=f"{slug}-vet")
    MembershipFactory(user=vet_user, clinic=clinic, role=Role.VET)
    vet = VetFactory(
        clinic=clinic, user=vet_user, first_name=vet_user.first_name, last_name=vet_user.last_name
    )
    return ClinicWorld(clinic=clinic, staff=staff, vet_user=vet_user, vet=vet)


@pytest.fixture
def world(db: None) -> World:
    onboarding = UserFactory(username="onboarder", is_staff=True)
    onboarding.groups.add(Group.objects.get(name=ONBOARDING_GROUP))
    care = UserFactory(username="carer")
    care.groups.add(Group.objects.get(name=CARE_GROUP))
    return World(
        a=_clinic_world("alder", "Alder Vet Clinic"),
        b=_clinic_world("birch", "Birch Animal Hospital"),
        onboarding=onboarding,
        care=care,
    )


def login(user: Any) -> HttpClient:
    client = HttpClient()
    client.force_login(user)
    return client
