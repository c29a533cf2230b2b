"""System checks of what the records' search needs from the database."""

from __future__ import annotations

from typing import Any

from django.core.checks import Tags, Warning, register
from django.db import connections

BYTE_ORDER_COLLATIONS = {"c", "posix", "c.utf8", "c.utf-8"}


def byte_order(provider: str, collation: str) -> bool:
    """Whether a PostgreSQL database (``pg_database.datlocprovider``, ``datcollate``) sorts
    text by bytes: libc's C collations do; ICU collations never do."""
    return provider in ("c", "b") and collation.lower() in BYTE_ORDER_COLLATIONS


@register(Tags.database)
def search_collation_check(databases: Any = None, **kwargs: Any) -> list[Warning]:
    """Client search tests "starts with" as a range (``records.models.people._prefix``),
    which is exact in byte order only: on PostgreSQL the database's collation must be C."""
    warnings: list[Warning] = []
    for alias in databases or []:
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT datlocprovider, datcollate FROM pg_database"
                " WHERE datname = current_database()"
            )
            provider, collation = cursor.fetchone() or ("", "")
        if not byte_order(str(provider), str(collation)):
            warnings.append(
                Warning(
                    f"The database's collation is {collation!r}: client search compares name "
                    "prefixes in byte order and may miss names under it.",
                    hint="Create the database with LC_COLLATE 'C.UTF-8' (or 'C') and "
                    "TEMPLATE template0, then migrate.",
                    id="records.W001",
                )
            )
    return warnings
