"""Who reaches which area: clinic pages, /care/, /admin/."""

from __future__ import annotations

from django.urls import reverse

from clinics.models import AuditEvent, Role
from tests.conftest import World, login
from tests.factories import ClinicFactory, MembershipFactory


def test_clinic_staff_cannot_reach_care(world: World) -> None:
    assert login(world.a.staff).get(reverse("care:search")).status_code == 403


def test_clinic_staff_cannot_reach_admin(world: World) -> None:
    response = login(world.a.staff).get(reverse("admin:index"))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_staff_flag_alone_does_not_open_admin(world: World) -> None:
    world.a.staff.is_staff = True
    world.a.staff.save()
    assert login(world.a.staff).get(reverse("admin:index")).status_code == 302


def test_onboarding_team_reaches_admin_and_sees_clinics(world: World) -> None:
    response = login(world.onboarding).get(reverse("admin:clinics_clinic_changelist"))
    assert response.status_code == 200
    assert "Alder Vet Clinic" in response.text


def test_pet_owner_care_searches_across_clinics_and_is_logged(world: World) -> None:
    from tests.factories import ClientFactory

    ClientFactory(clinic=world.a.clinic, first_name="Dana", last_name="Whitfield")
    ClientFactory(clinic=world.b.clinic, first_name="Dan", last_name="Whitfield")
    response = login(world.care).get(reverse("care:search"), {"q": "Whitfield"})
    assert response.status_code == 200
    assert "Alder Vet Clinic" in response.text and "Birch Animal Hospital" in response.text
    event = AuditEvent.objects.get(action="care.search")
    assert event.actor == world.care
    assert event.after == {"query": "Whitfield", "results": 2}


def test_home_sends_a_single_clinic_member_to_their_dashboard(world: World) -> None:
    response = login(world.a.staff).get(reverse("home"))
    assert response["Location"] == reverse("clinic-dashboard", args=["alder"])


def test_home_offers_a_choice_to_a_member_of_several_clinics(world: World) -> None:
    MembershipFactory(user=world.a.staff, clinic=world.b.clinic, role=Role.STAFF)
    response = login(world.a.staff).get(reverse("home"))
    assert response.status_code == 200
    assert "Alder Vet Clinic" in response.text and "Birch Animal Hospital" in response.text


def test_home_sends_care_and_onboarding_to_their_areas(world: World) -> None:
    assert login(world.care).get(reverse("home"))["Location"] == reverse("care:search")
    assert login(world.onboarding).get(reverse("home"))["Location"] == reverse("admin:index")


def test_dashboard_shows_counts_and_empty_state(world: World) -> None:
    empty = ClinicFactory(slug="cedar", name="Cedar Vets")
    MembershipFactory(user=world.a.staff, clinic=empty)
    page = login(world.a.staff).get(reverse("clinic-dashboard", args=["cedar"])).text
    assert "No practice system connected yet" in page
    assert 'data-testid="count-clients"' in page
