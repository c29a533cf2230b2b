"""Ids reserved ahead for a run's chunks stay theirs after the reserving transaction."""

from __future__ import annotations

import pytest
from django.db import transaction

from records.models import Client
from tests.factories import ClientFactory, ClinicFactory
from vetsync.lib.bulk import ReservedIds


@pytest.mark.django_db(transaction=True)
def test_ids_reserved_ahead_are_never_given_to_another_insert() -> None:
    clinic = ClinicFactory()
    before = ClientFactory(clinic=clinic)
    with transaction.atomic():
        reserved = ReservedIds({Client: 3})
    # Another writer's insert after the reservation committed (SQLite: the web process
    # between two chunks) takes an id above the block.
    other = ClientFactory(clinic=clinic)

    taken = reserved.take(Client, 2) + reserved.take(Client, 1)
    assert len(set(taken)) == 3 and taken == sorted(taken)
    assert before.pk < taken[0] and other.pk > taken[-1]
    for pk in taken:  # the ids are free to insert with
        ClientFactory(clinic=clinic, pk=pk)
    with pytest.raises(RuntimeError, match="ran out"):
        reserved.take(Client, 1)
    assert reserved.take(Client, 0) == []
