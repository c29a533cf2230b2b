"""Fast bulk writes for the sync engine's hot path.

A first copy of a big clinic writes hundreds of thousands of rows, and Django's bulk helpers
cost more than the writes themselves: ``bulk_create`` builds a model instance and compiles
SQL per batch, ``bulk_update`` builds one ``CASE WHEN`` per field over every row. Here rows
go straight to the driver in the fastest form each backend has:

- SQLite: one prepared statement run with ``executemany`` (a C loop in the driver);
- PostgreSQL: ``COPY … FROM STDIN`` for inserts and one ``UPDATE … FROM (VALUES …)`` per
  batch for updates (Django's client-side-binding cursor sends ``executemany`` row by row).

Values go through the backend's own adapters (dates, decimals, JSON), so the stored form is
the one ``save()`` would write.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from django.db import connections, models, router
from django.db.models import Lookup

UPDATE_BATCH = 2000


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
        # One array parameter per column, unnested: a handful of placeholders however many
        # rows (psycopg splits a query into its placeholders in Python, and thousands of
        # them in a VALUES list cost more than the update itself).
        names = ", ".join([*(quote(f"c{i}") for i in range(len(concrete))), quote("pk")])
        arrays = ", ".join(
            [
                *(f"%s::{f.db_type(connection)}[]" for f in concrete),
                f"%s::{_pk_type(meta, connection)}[]",
            ]
        )
        assignments = ", ".join(
            f"{quote(str(f.column))} = v.{quote(f'c{i}')}" for i, f in enumerate(concrete)
        )
        sql = (
            f"UPDATE {table} AS t SET {assignments} "  # noqa: S608
            f"FROM unnest({arrays}) AS v({names}) WHERE t.{pk} = v.{quote('pk')}"
        )
        for start in range(0, len(params), UPDATE_BATCH):
            batch = params[start : start + UPDATE_BATCH]
            cursor.execute(sql, [list(column) for column in zip(*batch, strict=True)])
    return len(rows)


class AnyOf(Lookup):
    """``column = ANY(%s)`` with the values as one array parameter (PostgreSQL): an ``IN``
    list of thousands of placeholders costs more to send than the rows it finds."""

    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> Any:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", (*lhs_params, list(self.rhs))


def _pk_type(meta: Any, connection: Any) -> str:
    return str(meta.pk.rel_db_type(connection))


class RowInserter:
    """Collects plain rows (dicts by attribute name) and inserts them in one go.

    Columns left out of a row take the field's default. Primary keys are not returned:
    callers read them back by a natural key.
    """

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        self.fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        self.defaults = {f.attname: f.get_default() for f in self.fields}
        self.rows: list[dict[str, object]] = []

    def __len__(self) -> int:
        """Rows waiting for the next flush (a caller flushes every so many)."""
        return len(self.rows)

    def add(self, **values: object) -> None:
        self.rows.append(values)

    def extend(self, rows: Iterable[dict[str, object]]) -> None:
        self.rows.extend(rows)

    def flush(self) -> int:
        if not self.rows:
            return 0
        connection = connections[router.db_for_write(self.model)]
        quote = connection.ops.quote_name
        table = quote(self.model._meta.db_table)
        columns = ", ".join(quote(str(f.column)) for f in self.fields)
        adapters = [_adapter(f, connection) for f in self.fields]
        names = [f.attname for f in self.fields]
        defaults = [self.defaults[name] for name in names]
        adapted = [(i, adapt) for i, adapt in enumerate(adapters) if adapt is not None]
        pairs = list(zip(names, defaults, strict=True))
        params = []
        for row in self.rows:
            values = [row.get(name, default) for name, default in pairs]
            for i, adapt in adapted:
                if values[i] is not None:
                    values[i] = adapt(values[i])
            params.append(values)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                raw = cursor.cursor  # the psycopg cursor under Django's wrapper
                with raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for values in params:
                        copy.write_row(values)
            else:
                marks = ", ".join(["%s"] * len(self.fields))
                sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608
                cursor.executemany(sql, cast(Any, params))
        count = len(self.rows)
        self.rows = []
        return count


def _adapter(field: Any, connection: Any) -> Callable[[Any], Any] | None:
    ops = connection.ops
    if isinstance(field, models.JSONField):
        return lambda value: ops.adapt_json_value(value, field.encoder)
    kind = field.get_internal_type()
    if kind == "DateTimeField":
        # Rows of one batch share a handful of timestamps; converting each once is enough.
        return functools.lru_cache(maxsize=4096)(ops.adapt_datetimefield_value)
    if kind == "DateField":
        return ops.adapt_datefield_value
    if kind == "DecimalField":
        return lambda value: ops.adapt_decimalfield_value(
            value, field.max_digits, field.decimal_places
        )
    return None


def insert_rows(model: type[models.Model], rows: Iterable[dict[str, Any]]) -> int:
    """Insert plain rows (dicts by attribute name) into ``model``'s table in one go."""
    inserter = RowInserter(model)
    inserter.extend(rows)
    return inserter.flush()
