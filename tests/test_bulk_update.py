"""The sync engine's bulk update writes each row's own values, in a transaction or not."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from records.models import Client
from tests.factories import ClientFactory, ClinicFactory
from vetsync.lib.bulk import bulk_update_rows

FIELDS = ["first_name", "email", "pims_seen", "pims_modified_at", "merged_into"]


def update_three() -> list[Client]:
    clinic = ClinicFactory()
    clients = [ClientFactory(clinic=clinic, pims_id=f"C-{i}") for i in range(3)]
    when = timezone.now().replace(microsecond=0)
    for i, client in enumerate(clients):
        client.first_name = f"Name\t{i} 'quoted' \\ back"
        client.email = ""
        client.pims_seen = {"first_name": client.first_name, "weight": "11.40", "n": [i, None]}
        client.pims_modified_at = when + dt.timedelta(minutes=i)
        client.merged_into = clients[0] if i else None
    assert bulk_update_rows(Client, clients, FIELDS) == 3
    return clients


def read_back(clients: list[Client]) -> list[tuple]:
    return [
        tuple(getattr(c, f"{name}_id" if name == "merged_into" else name) for name in FIELDS)
        for c in Client.objects.filter(pk__in=[c.pk for c in clients]).order_by("pk")
    ]


@pytest.mark.django_db
def test_each_row_gets_its_own_values_in_the_callers_transaction() -> None:
    clients = update_three()

    assert read_back(clients) == [
        (c.first_name, "", c.pims_seen, c.pims_modified_at, c.merged_into_id) for c in clients
    ]


@pytest.mark.django_db(transaction=True)
def test_each_row_gets_its_own_values_without_a_transaction() -> None:
    """In autocommit: PostgreSQL's staging table is emptied at each commit, so the copy and
    the update must share one."""
    clients = update_three()

    assert [row[0] for row in read_back(clients)] == [c.first_name for c in clients]
    assert [row[4] for row in read_back(clients)] == [None, clients[0].pk, clients[0].pk]
