"""The onboarding team's admin lists with many clinics: needs attention first, filters by
connector, state and clinic, pages of fifty, and as many queries for 5 clinics as for 50."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clinics.models import Connector, Integration
from tests.conftest import World, login
from tests.factories import ClinicFactory, IntegrationFactory, VetFactory


def _fleet(n: int, *, start: int = 0) -> list[Integration]:
    """``n`` integrations, all well (data a moment ago), each clinic with a vet."""
    at = timezone.now() - dt.timedelta(minutes=5)
    fleet = []
    for i in range(start, start + n):
        clinic = ClinicFactory(name=f"Fleet {i:03d}", slug=f"fleet-{i:03d}")
        VetFactory(clinic=clinic, last_name=f"Vet{i:03d}")
        fleet.append(
            IntegrationFactory(
                clinic=clinic,
                connector=Connector.EZYVET if i % 2 else Connector.SYNCVET,
                last_successful_sync_at=at,
            )
        )
    return fleet


def _names(html: str) -> list[str]:
    return re.findall(r">(Fleet \d{3}|Alder Vet Clinic|Birch Animal Hospital)<", html)


def _well(world: World) -> None:
    for clinic in (world.a.clinic, world.b.clinic):
        Integration.objects.filter(clinic=clinic).update(last_successful_sync_at=timezone.now())


def test_the_clinic_list_puts_what_needs_attention_first_and_filters_it(world: World) -> None:
    _well(world)
    fleet = _fleet(55)
    fleet[-1].failing_since = timezone.now()
    fleet[-1].save()
    onboarding = login(world.onboarding)
    url = reverse("admin:clinics_clinic_changelist")

    first = onboarding.get(url).content.decode()
    attention = onboarding.get(url, {"attention": "yes"}).content.decode()
    ezyvet = onboarding.get(url, {"integration__connector__exact": "ezyvet"}).content.decode()

    assert _names(first)[0] == "Fleet 054" and len(_names(first)) == 50
    assert "needs attention" in first.split(">Fleet 054<")[1].split("</tr>")[0]
    assert _names(attention) == ["Fleet 054"]
    assert set(_names(ezyvet)) == {f"Fleet {i:03d}" for i in range(1, 55, 2)}


def test_the_integration_list_puts_overdue_first_and_filters_by_state(world: World) -> None:
    _well(world)
    fleet = _fleet(55)
    fleet[-2].last_successful_sync_at = timezone.now() - dt.timedelta(days=1)
    fleet[-2].save()
    fleet[-3].status = Integration.Status.PAUSED
    fleet[-3].save()
    onboarding = login(world.onboarding)
    url = reverse("admin:clinics_integration_changelist")

    first = onboarding.get(url).content.decode()
    paused = onboarding.get(url, {"status__exact": "paused"}).content.decode()
    syncvet = onboarding.get(url, {"connector__exact": "syncvet", "attention": "no"})

    assert _names(first)[0] == "Fleet 053" and len(_names(first)) == 50
    assert _names(paused) == ["Fleet 052"]
    assert "Fleet 053" not in _names(syncvet.content.decode())
    assert "Fleet 054" in _names(syncvet.content.decode())


def test_the_clinic_filter_shows_the_chosen_clinic_not_every_clinic(world: World) -> None:
    fleet = _fleet(5)
    onboarding = login(world.onboarding)
    url = reverse("admin:clinics_vet_changelist")

    every = onboarding.get(url).content.decode()
    one = onboarding.get(url, {"clinic__id__exact": fleet[2].clinic_id}).content.decode()

    assert "?clinic__id__exact=" not in every  # no link per clinic in the sidebar
    vets = re.findall(r"Vet(\d{3})", one)
    assert set(vets) == {"002"}
    assert onboarding.get(url, {"clinic__id__exact": "x"}).status_code == 200


@pytest.mark.parametrize("value", ["²", "9" * 30, "9" * 5000, "-1"])
def test_a_clinic_filter_that_is_no_id_shows_the_list_unfiltered(world: World, value: str) -> None:
    # "²" passes str.isdigit() and int() refuses it; 30 nines overflow a database integer.
    onboarding = login(world.onboarding)
    for name in ("vet", "membership", "auditevent"):
        url = reverse(f"admin:clinics_{name}_changelist")
        response = onboarding.get(url, {"clinic__id__exact": value})
        assert response.status_code == 200, (name, response.status_code)
    page = onboarding.get(reverse("admin:clinics_vet_changelist"), {"clinic__id__exact": value})
    assert world.a.vet.last_name in page.text and world.b.vet.last_name in page.text


def _relation_filters() -> list[tuple[str, str]]:
    """(changelist URL name, filter) for every list filter that names a related object."""
    found = []
    for model, model_admin in admin.site._registry.items():
        for entry in model_admin.list_filter:
            name = entry if isinstance(entry, str) else None
            if name and model._meta.get_field(name.split("__")[0]).is_relation:
                opts = model._meta
                found.append((f"admin:{opts.app_label}_{opts.model_name}_changelist", name))
    return found


def test_a_related_object_filter_too_big_for_the_database_is_no_500(world: World) -> None:
    # Django's own filter asks ``?path__id__exact=``; ``?path=`` or ``?groups__in=`` with a
    # number no database integer holds reached the database as a 500.
    onboarding = login(world.onboarding)
    checked = 0
    for url_name, name in _relation_filters():
        url = reverse(url_name)
        if name.count("__") == 0:
            for param in (name, f"{name}__exact", f"{name}__in", f"{name}__gt"):
                response = onboarding.get(url, {param: "9" * 30})
                assert response.status_code in (200, 302, 400), (url, param)
                checked += 1
        assert onboarding.get(url, {f"{name}__id__exact": "9" * 30}).status_code in (200, 302)
    assert checked >= 8  # the checklists' onboarding path and the users' groups at least
    checklists = reverse("admin:clinics_onboardingchecklist_changelist")
    assert onboarding.get(checklists, {"path__isnull": "False"}).status_code == 200


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_the_lists_ask_the_database_as_often_for_5_clinics_as_for_50(world: World) -> None:
    onboarding = login(world.onboarding)
    urls = [
        reverse("admin:clinics_clinic_changelist"),
        reverse("admin:clinics_integration_changelist"),
        reverse("admin:clinics_onboardingchecklist_changelist"),
        reverse("admin:clinics_vet_changelist"),
        reverse("admin:clinics_membership_changelist"),
    ]
    onboarding.get(urls[0])  # the session's first page also records the visit
    _fleet(3)
    few = [_queries(onboarding, url) for url in urls]
    _fleet(45, start=3)
    many = [_queries(onboarding, url) for url in urls]
    assert few == many
