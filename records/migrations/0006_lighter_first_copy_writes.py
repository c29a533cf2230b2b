"""Fewer writes per row on a first copy: indexes no query needs, and log references.

- The merged-into reference is indexed only where it is set (the few merged PIMS copies).
- Indexes no query uses any more: (clinic, email) and (clinic, phone) from before matching
  moved into Python, and the (pims_id, clinic) lookups, which the partial unique constraints
  now serve. (clinic, name) over every client gives way to the narrower (clinic, customer_ref):
  the lists read the current-clients index; what reads every client of a clinic (the
  dashboard's counts, the customer import) needs only these two columns.
- The trigram indexes on client names (PostgreSQL): Pet Owner Care finds typo'd names through
  the name dictionary (0004, 0005). Only a site whose dictionary was never refreshed (its first
  few minutes) searches client names directly, and such a site has few clients.
- Stored batches are compressed with lz4 on PostgreSQL.
- Sync outcomes and weighings keep their references without a database check (see
  ``SyncRecordOutcome``).
"""

from typing import Any

import django.db.models.deletion
from django.db import DatabaseError, migrations, models, transaction

NAME_FIELDS = ("first_name", "last_name")


def payload_lz4(apps: Any, schema_editor: Any) -> None:
    """Stored batches (a big first copy is 70 MB of JSON) are compressed with lz4, several
    times faster than PostgreSQL's default; a server built without lz4 keeps its default."""
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute(
                "ALTER TABLE records_syncrunpayload ALTER COLUMN body SET COMPRESSION lz4"
            )
    except DatabaseError:
        pass  # "compression method lz4 not supported": the default compression stays


def drop_name_trigram_indexes(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for field in NAME_FIELDS:
            schema_editor.execute(f"DROP INDEX IF EXISTS care_client_{field}_trgm")


def create_name_trigram_indexes(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for field in NAME_FIELDS:
            schema_editor.execute(
                f"CREATE INDEX care_client_{field}_trgm ON records_client "
                f"USING gin (lower({field}) gin_trgm_ops) WHERE merged_into_id IS NULL"
            )


class Migration(migrations.Migration):
    dependencies = [
        ("records", "0005_care_name_token_counts"),
    ]

    operations = [
        migrations.RunPython(drop_name_trigram_indexes, create_name_trigram_indexes),
        migrations.RunPython(payload_lz4, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="client",
            name="merged_into",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                help_text="Set when this PIMS record was merged into a home-delivery customer.",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="absorbed",
                to="records.client",
            ),
        ),
        migrations.AddIndex(
            model_name="client",
            index=models.Index(
                fields=["clinic", "customer_ref"], name="client_clinic_customer_ref"
            ),
        ),
        migrations.AddIndex(
            model_name="client",
            index=models.Index(
                condition=models.Q(("merged_into__isnull", False)),
                fields=["merged_into"],
                name="client_merged_into",
            ),
        ),
        migrations.RemoveIndex(
            model_name="client",
            name="records_cli_clinic__d30888_idx",
        ),
        migrations.RemoveIndex(
            model_name="client",
            name="client_clinic_email",
        ),
        migrations.RemoveIndex(
            model_name="client",
            name="client_clinic_phone",
        ),
        migrations.RemoveIndex(
            model_name="client",
            name="client_pims_id_clinic",
        ),
        migrations.RemoveIndex(
            model_name="patient",
            name="patient_pims_id_clinic",
        ),
        migrations.AlterField(
            model_name="syncrecordoutcome",
            name="client",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="records.client",
            ),
        ),
        migrations.AlterField(
            model_name="syncrecordoutcome",
            name="patient",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="records.patient",
            ),
        ),
        migrations.AlterField(
            model_name="syncrecordoutcome",
            name="run",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="outcomes",
                to="records.syncrun",
            ),
        ),
        migrations.AlterField(
            model_name="weightrecord",
            name="run",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="records.syncrun",
            ),
        ),
    ]
