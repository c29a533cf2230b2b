"""Stored batches compressed with lz4 on PostgreSQL (where the server has it).

A first copy's batch is tens of megabytes of JSON, written once when it arrives (in the agent
API's request, or by the pull worker) and read back by the sync worker. PostgreSQL's default
TOAST compression (pglz) took 1.9 s to store a 72 MB batch of 100,000 clients; lz4 takes 1.0 s
for the same size on disk (9.2 vs 9.4 MB). Only new values are compressed the new way; stored
batches are read either way. SQLite keeps text as it is.
"""

from django.db import migrations

TABLE = "records_syncrunpayload"


def lz4_supported(cursor) -> bool:
    cursor.execute(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
    )
    row = cursor.fetchone()
    return bool(row and row[0])


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if lz4_supported(cursor):
            cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN body SET COMPRESSION lz4")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN body SET COMPRESSION default")


class Migration(migrations.Migration):
    dependencies = [("records", "0011_retention_and_health")]

    operations = [migrations.RunPython(forwards, backwards)]
