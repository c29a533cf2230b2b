"""A dictionary of the names clients have, for Pet Owner Care's typo-tolerant search.

Searching a million clients' names by trigram makes PostgreSQL visit every row whose name
shares trigrams with the typed word (thousands of heap blocks for a common surname). The
distinct names are few: the search finds the closest few names here by trigram, then the
clients with exactly those names through plain b-tree indexes. PostgreSQL only; SQLite keeps
its own fallback. Refreshed by a beat task (`records.tasks.care_name_tokens_refresh`).
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

CREATE = [
    """
    CREATE MATERIALIZED VIEW care_name_tokens AS
    SELECT DISTINCT token FROM (
        SELECT lower(first_name) AS token FROM records_client WHERE merged_into_id IS NULL
        UNION ALL
        SELECT lower(last_name) FROM records_client WHERE merged_into_id IS NULL
    ) names
    WHERE token <> ''
    """,
    "CREATE UNIQUE INDEX care_name_tokens_token ON care_name_tokens (token)",
    "CREATE INDEX care_name_tokens_trgm ON care_name_tokens USING gin (token gin_trgm_ops)",
    "CREATE INDEX care_client_first_name_lower ON records_client (lower(first_name)) "
    "WHERE merged_into_id IS NULL",
    "CREATE INDEX care_client_last_name_lower ON records_client (lower(last_name)) "
    "WHERE merged_into_id IS NULL",
]
DROP = [
    "DROP INDEX IF EXISTS care_client_last_name_lower",
    "DROP INDEX IF EXISTS care_client_first_name_lower",
    "DROP MATERIALIZED VIEW IF EXISTS care_name_tokens",
]


def create(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for sql in CREATE:
            schema_editor.execute(sql)


def drop(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for sql in DROP:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("records", "0003_care_lookup")]

    operations = [migrations.RunPython(create, drop)]
