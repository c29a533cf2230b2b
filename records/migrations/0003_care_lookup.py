"""Pet Owner Care lookup: cross-clinic indexes, pg_trgm for typo-tolerant names, the care log.

The name indexes depend on the database: trigram GIN indexes on PostgreSQL (``%`` similarity
searches), plain lower-case b-trees on SQLite (the fallback's prefix candidates). They are
created here only, not declared on the model, because neither kind exists on the other backend.
"""

from __future__ import annotations

from typing import Any

import django.db.models.functions.text
from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models
from django.db.models import Q
from django.db.models.functions import Lower

CURRENT = Q(merged_into__isnull=True)


NAME_FIELDS = ("first_name", "last_name")


def add_name_indexes(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        # Raw SQL: OpClass only unwraps inside index expressions when django.contrib.postgres
        # is an installed app, and VetSync does not need the rest of it.
        for field in NAME_FIELDS:
            schema_editor.execute(
                f"CREATE INDEX care_client_{field}_trgm ON records_client "
                f"USING gin (lower({field}) gin_trgm_ops) WHERE merged_into_id IS NULL"
            )
        return
    client = apps.get_model("records", "Client")
    for field in NAME_FIELDS:
        schema_editor.add_index(client, _lower_index(field))


def remove_name_indexes(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for field in NAME_FIELDS:
            schema_editor.execute(f"DROP INDEX IF EXISTS care_client_{field}_trgm")
        return
    client = apps.get_model("records", "Client")
    for field in NAME_FIELDS:
        schema_editor.remove_index(client, _lower_index(field))


def _lower_index(field: str) -> models.Index:
    return models.Index(Lower(field), condition=CURRENT, name=f"care_client_{field}_lower")


class Migration(migrations.Migration):
    dependencies = [
        ("clinics", "0001_initial"),
        ("records", "0002_sync_engine_and_record_pages"),
    ]

    operations = [
        TrigramExtension(),  # a no-op on SQLite
        migrations.CreateModel(
            name="CareLogEntry",
            fields=[],
            options={
                "verbose_name": "Pet Owner Care log entry",
                "verbose_name_plural": "Pet Owner Care log",
                "permissions": [("view_care_log", "Can view the Pet Owner Care audit log")],
                "proxy": True,
                "default_permissions": (),
                "indexes": [],
                "constraints": [],
            },
            bases=("clinics.auditevent",),
        ),
        migrations.AddIndex(
            model_name="client",
            index=models.Index(
                condition=models.Q(("merged_into__isnull", True)),
                fields=["phone_normalized"],
                name="care_client_phone",
            ),
        ),
        migrations.AddIndex(
            model_name="client",
            index=models.Index(
                django.db.models.functions.text.Lower("email"),
                condition=models.Q(("merged_into__isnull", True)),
                name="care_client_email",
            ),
        ),
        migrations.AddIndex(
            model_name="client",
            index=models.Index(
                condition=models.Q(("merged_into__isnull", True)),
                fields=["postcode"],
                name="care_client_postcode",
            ),
        ),
        migrations.RunPython(add_name_indexes, remove_name_indexes, elidable=False),
    ]
