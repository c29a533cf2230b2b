"""Helpers of the client and pet page tests: addresses, the names a list shows, a section
of a page, a pair held as a possible match."""

from __future__ import annotations

import re
from typing import Any

from django.urls import reverse

from records.models import Client, Patient
from tests.conftest import World
from tests.factories import ClientFactory
from tests.records.batches import batch, ingest, owner

LATER = "2026-11-30T09:00:00Z"
LATEST = "2026-12-05T09:00:00Z"


def dana_in_store(clinic: Any, **fields: Any) -> Client:
    """The store customer the batches' first PIMS client (``owner()``: Dana Whitfield, C-1)
    merges into automatically: the same email, a surname one letter off."""
    return ClientFactory(
        clinic=clinic,
        customer_ref=fields.pop("customer_ref", "HD-1"),
        first_name="Dana",
        last_name="Whitfeld",
        email="dana@example.org",
        phone="",
        **fields,
    )


def possible_match_pair(clinic: Any) -> Client:
    """A store customer (returned) and a PIMS client with the same surname and address but
    another first name (a household?), no phone or pet to tell: a possible match."""
    customer = ClientFactory(
        clinic=clinic,
        customer_ref="HD-3",
        first_name="Pat",
        last_name="Maybe",
        email="",
        phone="",
        address_line1="7 Oak Ln",
        postcode="97001",
    )
    ingest(
        clinic,
        batch(
            owner(
                "C-4",
                first_name="Robin",
                last_name="Maybe",
                email="",
                phone="",
                address={"line1": "7 Oak Lane", "postcode": "97001"},
                patients=[],
            )
        ),
    )
    return customer


def list_url(world: World, **params: str) -> str:
    url = reverse("records:client-list", args=[world.a.clinic.slug])
    if params:
        from urllib.parse import urlencode

        url += "?" + urlencode(params)
    return url


def client_url(client: Client) -> str:
    return reverse("records:client-detail", args=[client.clinic.slug, client.pk])


def pet_url(patient: Patient) -> str:
    return reverse("records:patient-detail", args=[patient.clinic.slug, patient.pk])


def names_listed(response: Any) -> list[str]:
    html = response.content.decode()
    rows = re.findall(r'data-testid="client-row">\s*<td>\s*<a href="[^"]+">([^<]+)</a>', html)
    return [" ".join(r.split()) for r in rows]


def section(response: Any, testid: str) -> str:
    """The HTML of the element with this data-testid (up to the next one of its kind)."""
    html = response.content.decode()
    start = html.index(f'data-testid="{testid}"')
    return html[start : start + 4000]
