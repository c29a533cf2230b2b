"""Tenant isolation over every clinic URL, found by walking the URL resolver.

A new URL under /c/<clinic_slug>/ is covered without anyone editing this file; a new kind of
object id in a URL fails loudly until OBJECT_IDS learns how to make one for clinic A.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import Client as HttpClient
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from prescriptions.models import Product, ProductKind, WritebackItem
from prescriptions.services import (
    ItemSpec,
    LineSpec,
    order_place,
    prescription_create,
    rx_request_submit,
)
from records.models import ClientMerge, ManualUpdate
from tests.conftest import ClinicWorld, World, login
from tests.factories import ClientFactory, PatientFactory
from tests.records.batches import batch, ingest, owner


# kwarg name in a URL -> how to make an object of that kind in the given clinic.
def _run(world: ClinicWorld) -> int:
    return ingest(world.clinic, batch(owner(first_name="Old"), owner("C-2", patients=[]))).pk


def _manual_update(world: ClinicWorld) -> int:
    ingest(world.clinic, batch(owner("C-mu", patients=[])))
    ingest(world.clinic, batch(owner("C-mu", patients=[], first_name="New", modified_at=LATER)))
    return ManualUpdate.objects.get(clinic=world.clinic, client__pims_id="C-mu").pk


def _client(world: ClinicWorld) -> int:
    return ClientFactory(clinic=world.clinic).pk


def _patient(world: ClinicWorld) -> int:
    return PatientFactory(client=ClientFactory(clinic=world.clinic)).pk


_merges = itertools.count(1)


def _merge(world: ClinicWorld) -> int:
    n = next(_merges)
    ClientFactory(
        clinic=world.clinic,
        customer_ref=f"HD-merge-{n}",
        first_name="Merle",
        last_name=f"Merger{n}",
        email=f"merle{n}@example.org",
    )
    ingest(
        world.clinic,
        batch(
            owner(
                f"C-merge-{n}",
                first_name="Merle",
                last_name=f"Merger{n}",
                email=f"merle{n}@example.org",
                patients=[],
            )
        ),
    )
    return ClientMerge.objects.get(clinic=world.clinic, pims_id=f"C-merge-{n}").pk


def _product() -> Product:
    product, _ = Product.objects.get_or_create(
        sku="TEN-1",
        defaults={"name": "Tenancy tabs", "kind": ProductKind.RX_MEDICATION, "price": 1},
    )
    return product


def _prescription(world: ClinicWorld) -> int:
    pet = PatientFactory(client=ClientFactory(clinic=world.clinic))
    return prescription_create(
        clinic=world.clinic,
        patient=pet,
        vet=world.vet,
        items=[ItemSpec(product=_product(), quantity=10, refills=1, instructions="Daily")],
        actor=world.vet_user,
        approve=True,
    ).pk


def _order(world: ClinicWorld) -> int:
    pet = PatientFactory(client=ClientFactory(clinic=world.clinic))
    rx = prescription_create(
        clinic=world.clinic,
        patient=pet,
        vet=world.vet,
        items=[ItemSpec(product=_product(), quantity=10, refills=1, instructions="Daily")],
        actor=world.vet_user,
        approve=True,
    )
    item = rx.items.get()
    return order_place(
        clinic=world.clinic,
        patient=pet,
        lines=[LineSpec(product=item.product, quantity=10, prescription_item=item)],
        actor=world.staff,
    ).pk


def _rx_request(world: ClinicWorld) -> int:
    pet = PatientFactory(client=ClientFactory(clinic=world.clinic))
    return rx_request_submit(clinic=world.clinic, patient=pet, product=_product(), quantity=10).pk


def _writeback(world: ClinicWorld) -> int:
    rx = _prescription(world)
    return WritebackItem.objects.create(
        clinic=world.clinic,
        prescription_id=rx,
        kind=WritebackItem.Kind.PRESCRIBE,
        target=WritebackItem.Target.AGENT,
        sequence=1,
        key=f"tenancy:{rx}",
        payload={},
        status=WritebackItem.Status.FAILED,
    ).pk


LATER = "2026-11-30T00:00:00Z"
OBJECT_IDS: dict[str, Callable[[ClinicWorld], Any]] = {
    "run_id": _run,
    "update_id": _manual_update,
    "client_id": _client,
    "patient_id": _patient,
    "merge_id": _merge,
    "prescription_id": _prescription,
    "order_id": _order,
    "request_id": _rx_request,
    "item_id": _writeback,
}


def clinic_urls() -> Iterator[tuple[str, set[str]]]:
    def walk(
        patterns: list[Any], namespaces: list[str], converters: set[str]
    ) -> Iterator[tuple[str, set[str]]]:
        for entry in patterns:
            names = set(getattr(entry.pattern, "converters", {}) or {}) | converters
            if isinstance(entry, URLResolver):
                ns = [*namespaces, entry.namespace] if entry.namespace else namespaces
                yield from walk(entry.url_patterns, ns, names)
            elif isinstance(entry, URLPattern) and "clinic_slug" in names:
                assert entry.name, f"clinic URL {entry.pattern} needs a name"
                yield ":".join([*namespaces, entry.name]), names

    yield from walk(get_resolver().url_patterns, [], set())


def reverse_for(world: World, name: str, kwargs_names: set[str]) -> str:
    kwargs: dict[str, Any] = {"clinic_slug": world.a.clinic.slug}
    for kwarg in kwargs_names - {"clinic_slug"}:
        assert kwarg in OBJECT_IDS, f"tests/test_tenancy.py: teach OBJECT_IDS to make a {kwarg!r}"
        kwargs[kwarg] = OBJECT_IDS[kwarg](world.a)
    return reverse(name, kwargs=kwargs)


def test_the_walk_finds_the_clinic_pages(world: World) -> None:
    names = {name for name, _ in clinic_urls()}
    assert {"clinic-dashboard", "records:client-list"} <= names


def test_member_of_another_clinic_gets_404_on_every_clinic_url(world: World) -> None:
    outsider = login(world.b.staff)
    checked = 0
    for name, kwargs_names in clinic_urls():
        url = reverse_for(world, name, kwargs_names)
        get, post = outsider.get(url), outsider.post(url)
        statuses = {get.status_code, post.status_code}
        assert statuses <= {404, 405}, f"{url}: GET {get.status_code}, POST {post.status_code}"
        assert 404 in statuses, url
        checked += 1
    assert checked >= 2


def test_anonymous_user_is_sent_to_login_from_every_clinic_url(world: World) -> None:
    anonymous = HttpClient()
    for name, kwargs_names in clinic_urls():
        url = reverse_for(world, name, kwargs_names)
        response = anonymous.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse(settings.LOGIN_URL)), url


def test_member_sees_their_own_clinic_pages(world: World) -> None:
    member = login(world.a.staff)
    for name, kwargs_names in clinic_urls():
        url = reverse_for(world, name, kwargs_names)
        response = member.get(url)
        assert response.status_code in {200, 405}, f"{url}: {response.status_code}"


@pytest.mark.parametrize("who", ["care", "onboarding"])
def test_team_members_without_membership_cannot_open_clinic_pages(world: World, who: str) -> None:
    response = login(getattr(world, who)).get(
        reverse("clinic-dashboard", args=[world.a.clinic.slug])
    )
    assert response.status_code == 404
