"""Fast bulk writes for the sync engine's hot path.

A first copy of a big clinic writes hundreds of thousands of rows, and Django's bulk helpers
cost more than the writes themselves: ``bulk_create`` builds a model instance and compiles
SQL per batch, ``bulk_update`` builds one ``CASE WHEN`` per field over every row. Here rows
go straight to the driver in the fastest form each backend has:

- SQLite: one prepared statement run with ``executemany`` (a C loop in the driver);
- PostgreSQL: ``COPY … FROM STDIN`` for inserts, and for updates into a temporary table
  that one ``UPDATE … FROM`` reads (Django's client-side-binding cursor sends
  ``executemany`` row by row, and quotes array parameters value by value in Python).

Values go through the backend's own adapters (dates, decimals; JSON as text), so the stored
form is the one ``save()`` would write.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, cast

from django.db import connections, models, router, transaction
from django.db.models import Lookup


def bulk_update_rows[M: models.Model](
    model: type[M], objs: Iterable[M], fields: Sequence[str]
) -> int:
    """Write ``fields`` of each saved object in ``objs`` by primary key; return rows sent."""
    rows = list(objs)
    if not rows:
        return 0
    connection = connections[router.db_for_write(model)]
    meta = model._meta
    concrete: list[Any] = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    table, pk = quote(meta.db_table), quote(str(meta.pk.column))
    params = [
        [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in concrete] + [obj.pk]
        for obj in rows
    ]
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            assignments = ", ".join(f"{quote(str(f.column))} = %s" for f in concrete)
            sql = f"UPDATE {table} SET {assignments} WHERE {pk} = %s"  # noqa: S608
            cursor.executemany(sql, cast(Any, params))
            return len(rows)
        _update_through_stage(cursor, meta, concrete, params)
    return len(rows)


def _update_through_stage(
    cursor: Any, meta: Any, fields: Sequence[Any], params: list[list[Any]]
) -> None:
    """PostgreSQL: the rows COPYed into a temporary table shaped like the updated columns,
    then one ``UPDATE … FROM`` it. Django's cursor binds parameters client-side, quoting
    each value of an array in Python (a fifth of a 1,000-client delta's time); COPY formats
    the rows in the driver's C code."""
    quote = cursor.db.ops.quote_name
    table, pk = quote(meta.db_table), quote(str(meta.pk.column))
    columns = [quote(str(f.column)) for f in fields] + [pk]
    listed = ", ".join(columns)
    digest = hashlib.blake2s(f"{meta.db_table}:{listed}".encode(), digest_size=6).hexdigest()
    stage = quote(f"bulk_update_{digest}")
    # TEMP: private to the connection, never logged; emptied at each commit, and here for a
    # second update in the same transaction.
    assignments = ", ".join(f"{column} = s.{column}" for column in columns[:-1])
    # One transaction (a savepoint inside the caller's): in autocommit the stage would be
    # emptied between the COPY and the UPDATE.
    with transaction.atomic(using=cursor.db.alias):
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "  # noqa: S608
            f"SELECT {listed} FROM {table} WITH NO DATA"
        )
        cursor.execute(f"DELETE FROM {stage}")  # noqa: S608 (a name made here)
        with cursor.cursor.copy(f"COPY {stage} ({listed}) FROM STDIN") as copy:
            for row in params:
                copy.write_row(row)
        cursor.execute(
            f"UPDATE {table} AS t SET {assignments} FROM {stage} AS s WHERE t.{pk} = s.{pk}"  # noqa: S608
        )


class AnyOf(Lookup):
    """``column = ANY(%s)`` with the values as one array parameter (PostgreSQL): an ``IN``
    list of thousands of placeholders costs more to send than the rows it finds."""

    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> Any:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", (*lhs_params, list(self.rhs))


class RowInserter:
    """Collects plain rows (dicts by attribute name) and inserts them in one go.

    Columns left out of a row take the field's default. Each row is turned into database
    values as it is added, so a flush only sends them. Primary keys are not returned: callers
    give them (``with_pk``, see ``reserve_ids``) or read them back by a natural key.
    """

    def __init__(self, model: type[models.Model], *, with_pk: bool = False) -> None:
        self.model = model
        self.connection = connections[router.db_for_write(model)]
        self.fields = [f for f in model._meta.concrete_fields if with_pk or not f.primary_key]
        self._pairs = [(f.attname, f.get_default()) for f in self.fields]
        self._adapted = [
            (i, adapt)
            for i, f in enumerate(self.fields)
            if (adapt := _adapter(f, self.connection)) is not None
        ]
        self.rows: list[list[Any]] = []

    def __len__(self) -> int:
        """Rows waiting for the next flush (a caller flushes every so many)."""
        return len(self.rows)

    def add(self, **values: object) -> None:
        self.extend([values])

    def extend(self, rows: Iterable[dict[str, object]]) -> RowInserter:
        pairs, adapted, append = self._pairs, self._adapted, self.rows.append
        for row in rows:
            values = [row.get(name, default) for name, default in pairs]
            for i, adapt in adapted:
                if values[i] is not None:
                    values[i] = adapt(values[i])
            append(values)
        return self

    def flush(self) -> int:
        if not self.rows:
            return 0
        connection = self.connection
        quote = connection.ops.quote_name
        table = quote(self.model._meta.db_table)
        columns = ", ".join(quote(str(f.column)) for f in self.fields)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                raw = cursor.cursor  # the psycopg cursor under Django's wrapper
                with raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for values in self.rows:
                        copy.write_row(values)
            else:
                marks = ", ".join(["%s"] * len(self.fields))
                sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608
                cursor.executemany(sql, cast(Any, self.rows))
        count = len(self.rows)
        self.rows = []
        return count


def reserve_ids(model: type[models.Model], count: int) -> list[int]:
    """Primary keys for ``count`` rows about to be inserted (``RowInserter(with_pk=True)``), so
    rows that refer to them can be built before any is written.

    PostgreSQL takes them from the table's sequence (unused ones are simply skipped, as after
    a rollback). SQLite has one writer at a time: the caller's transaction must already hold
    the write lock (have written something), so the ids above the highest ever given stay free
    until it commits.
    """
    if count <= 0:
        return []
    connection = connections[router.db_for_write(model)]
    table, column = model._meta.db_table, str(model._meta.pk.column)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [table, column, count],
            )
            return [row[0] for row in cursor.fetchall()]
        quote = connection.ops.quote_name
        cursor.execute(
            f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = %s), 0), "  # noqa: S608
            f"coalesce((SELECT max({quote(column)}) FROM {quote(table)}), 0))",
            [table],
        )
        top = int(cursor.fetchone()[0])
    return list(range(top + 1, top + count + 1))


def _adapter(field: Any, connection: Any) -> Callable[[Any], Any] | None:
    """How the backend wants ``field``'s values; None where it takes them as they are (dates,
    times and decimals on PostgreSQL, whose driver adapts them itself)."""
    ops = connection.ops
    if isinstance(field, models.JSONField):
        # As JSON text, which both backends read into the column (PostgreSQL's COPY parses it
        # as jsonb): dumped while the rows are built rather than while they are sent.
        return (field.encoder or json.JSONEncoder)().encode
    kind = field.get_internal_type()
    adapt: Callable[[Any], Any]
    if kind == "DateTimeField":
        # Rows of one batch share a handful of timestamps; converting each once is enough.
        adapt = functools.lru_cache(maxsize=4096)(ops.adapt_datetimefield_value)
        sample: Any = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    elif kind == "DateField":
        adapt, sample = ops.adapt_datefield_value, dt.date(2000, 1, 1)
    elif kind == "DecimalField":
        adapt = functools.partial(
            ops.adapt_decimalfield_value,
            max_digits=field.max_digits,
            decimal_places=field.decimal_places,
        )
        sample = Decimal("1")
    else:
        return None
    return None if adapt(sample) is sample else adapt


def insert_rows(model: type[models.Model], rows: Iterable[dict[str, Any]]) -> int:
    """Insert plain rows (dicts by attribute name) into ``model``'s table in one go."""
    return RowInserter(model).extend(rows).flush()
