"""The name dictionary counts the clients of each name, so that a search starts from its
rarest word (a surname, most often) instead of the thousands who share a first name."""

from __future__ import annotations

from typing import Any

from django.db import migrations

CREATE = [
    "DROP MATERIALIZED VIEW IF EXISTS care_name_tokens",
    """
    CREATE MATERIALIZED VIEW care_name_tokens AS
    SELECT token, count(*) AS clients FROM (
        SELECT lower(first_name) AS token FROM records_client WHERE merged_into_id IS NULL
        UNION ALL
        SELECT lower(last_name) FROM records_client WHERE merged_into_id IS NULL
    ) names
    WHERE token <> ''
    GROUP BY token
    """,
    "CREATE UNIQUE INDEX care_name_tokens_token ON care_name_tokens (token)",
    "CREATE INDEX care_name_tokens_prefix ON care_name_tokens (token text_pattern_ops)",
    "CREATE INDEX care_name_tokens_trgm ON care_name_tokens USING gin (token gin_trgm_ops)",
]
PREVIOUS = [
    "DROP MATERIALIZED VIEW IF EXISTS care_name_tokens",
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
]


def forward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for sql in CREATE:
            schema_editor.execute(sql)


def backward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for sql in PREVIOUS:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("records", "0004_care_name_tokens")]

    operations = [migrations.RunPython(forward, backward)]
