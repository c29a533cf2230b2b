"""The named test world: two clinics, a staff member and a vet of each, the teams."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client as HttpClient
from django.urls import reverse

from clinics.access import CARE_GROUP, ONBOARDING_GROUP
from clinics.models import Clinic, Role
from clinics.two_factor.policy import two_factor_required
from clinics.two_factor.services import has_two_factor
from tests.factories import (
    ClinicFactory,
    IntegrationFactory,
    MembershipFactory,
    UserFactory,
    VetFactory,
)
from tests.two_factor import second_factor_code


def clear_own_cache() -> None:
    """Empty this test process's part of the cache. On Redis every xdist worker shares one
    database under its own key prefix, and ``cache.clear()`` would flush the others' too
    (their sessions and cached menus vanish mid-test)."""
    prefix = settings.CACHES["default"].get("KEY_PREFIX")
    if "Redis" not in settings.CACHES["default"]["BACKEND"] or not prefix:
        cache.clear()
        return
    client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(autouse=True)
def _own_cache_cleared() -> None:
    # Each test starts with nothing cached: a menu or a count cached by an earlier test (whose
    # rows were rolled back) is never read, and a cache entry's age never depends on test order.
    clear_own_cache()


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
    """A client logged in as the user; whoever needs a second factor passes it through the
    real verification page, as after the login form."""
    client = HttpClient()
    client.force_login(user)
    if two_factor_required(user) or has_two_factor(user):
        response = client.post(reverse("two-factor-verify"), {"token": second_factor_code(user)})
        assert response.status_code == 302, "the second factor was refused"
    return client
