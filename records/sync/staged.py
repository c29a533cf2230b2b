"""The staged first copy: a chunk's new clients and pets written as set operations.

A first copy is almost all creates: a client VetSync has never seen, with pets it has never
seen, that the run's merge plan leaves alone. Deciding those takes no Python beyond reading
the batch, so the engine (``Engine.prepare``) hands them here instead of building a row per
client, pet, weighing and outcome. Each is staged as one row (the client) plus one per pet,
loaded into TEMP tables in one go (COPY on PostgreSQL, one ``executemany`` on SQLite), and
the chunk's clients, pets, weighings and outcomes are then ``INSERT … SELECT``-ed from the
stage, the PIMS values kept (``pims_seen``) built by the database.

The rows are the ones the engine would write for the same entries: ids reserved in batch order
(``reserve_ids``), the outcome rows of the chunk numbered in batch order whichever path decided
them, the same field values and ``pims_seen``. Everything happens in the chunk's transaction,
so a staged chunk commits, rolls back and resumes exactly like any other. The merged and
possible matches, records already known and anything quarantined stay with the engine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connections, models, router

from records.models import Client, Outcome, Patient, SyncRecordOutcome, WeightRecord
from vetsync.pims.records import PimsClient

STAGE_CLIENT = "sync_stage_client"
STAGE_PATIENT = "sync_stage_patient"

# Column name and type (PostgreSQL, SQLite) of each stage table; rows are built in this order.
_CLIENT_COLUMNS = (
    ("id", "bigint", "integer"),
    ("outcome_id", "bigint", "integer"),
    ("pims_id", "text", "text"),
    ("first_name", "text", "text"),
    ("last_name", "text", "text"),
    ("email", "text", "text"),
    ("phone", "text", "text"),
    ("phone_normalized", "text", "text"),
    ("line1", "text", "text"),
    ("line2", "text", "text"),
    ("city", "text", "text"),
    ("state", "text", "text"),
    ("postcode", "text", "text"),
    ("country", "text", "text"),
    ("active", "boolean", "integer"),
    ("modified_at", "timestamptz", "text"),
)
_PATIENT_COLUMNS = (
    ("id", "bigint", "integer"),
    ("outcome_id", "bigint", "integer"),
    ("client_id", "bigint", "integer"),
    ("pims_id", "text", "text"),
    ("name", "text", "text"),
    ("species", "text", "text"),
    ("breed", "text", "text"),
    ("sex", "text", "text"),
    ("birth_date", "text", "text"),  # ISO text: the same string goes to pims_seen
    ("weight", "text", "text"),  # str(Decimal), as pims_seen keeps it
    ("weight_unit", "text", "text"),
    ("deceased", "boolean", "integer"),
    ("deceased_on", "text", "text"),
    ("microchip", "text", "text"),
    ("active", "boolean", "integer"),
    ("modified_at", "timestamptz", "text"),
)
# ``pims_seen`` (``records.fields.client_seen`` / ``patient_seen``): key → stage column.
_CLIENT_SEEN = (
    ("first_name", "first_name"),
    ("last_name", "last_name"),
    ("email", "email"),
    ("phone", "phone"),
    ("line1", "line1"),
    ("line2", "line2"),
    ("city", "city"),
    ("state", "state"),
    ("postcode", "postcode"),
    ("country", "country"),
    ("active", "active"),
)
_PATIENT_SEEN = (
    ("name", "name"),
    ("species", "species"),
    ("breed", "breed"),
    ("sex", "sex"),
    ("birth_date", "birth_date"),
    ("weight", "weight"),
    ("weight_unit", "weight_unit"),
    ("deceased", "deceased"),
    ("deceased_on", "deceased_on"),
    ("microchip", "microchip"),
    ("active", "active"),
)
_BOOLEAN_SEEN = {"active", "deceased"}


@dataclass(slots=True)
class StagedEntry:
    """A new client (and its new pets) the chunk creates through the stage."""

    client: PimsClient
    pk: int
    patient_pks: list[int]
    # Outcome rows the engine had decided before this entry: where its own rows go.
    after: int
    outcome_pks: list[int] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return 1 + len(self.patient_pks)


@dataclass
class StagedCreates:
    """The chunk's staged entries as database values, ready to load (``load``)."""

    clients: list[tuple[Any, ...]] = field(default_factory=list)
    patients: list[tuple[Any, ...]] = field(default_factory=list)

    @classmethod
    def build(
        cls, entries: Sequence[StagedEntry], *, region: str, phone: Callable[[str, str], str]
    ) -> StagedCreates:
        """One row per client and per pet; ``phone`` normalises a phone for ``region``."""
        connection = connections[router.db_for_write(Client)]
        when = _datetime_adapter(connection)
        staged = cls()
        add_client, add_patient = staged.clients.append, staged.patients.append
        for entry in entries:
            c, a = entry.client, entry.client.address
            add_client(
                (
                    entry.pk,
                    entry.outcome_pks[0],
                    c.pims_id,
                    c.first_name,
                    c.last_name,
                    c.email,
                    c.phone,
                    phone(c.phone, region),
                    a.line1,
                    a.line2,
                    a.city,
                    a.state,
                    a.postcode,
                    a.country,
                    c.active,
                    when(c.modified_at),
                )
            )
            for p, pk, outcome_pk in zip(
                c.patients, entry.patient_pks, entry.outcome_pks[1:], strict=True
            ):
                add_patient(
                    (
                        pk,
                        outcome_pk,
                        entry.pk,
                        p.pims_id,
                        p.name,
                        p.species,
                        p.breed,
                        p.sex,
                        p.birth_date.isoformat() if p.birth_date else None,
                        str(p.weight) if p.weight is not None else None,
                        p.weight_unit.value,
                        p.deceased,
                        p.deceased_on.isoformat() if p.deceased_on else None,
                        p.microchip,
                        p.active,
                        when(p.modified_at),
                    )
                )
        return staged

    def __len__(self) -> int:
        return len(self.clients) + len(self.patients)


def number_outcomes(
    outcomes: list[dict[str, Any]], staged: Sequence[StagedEntry], ids: Iterator[int]
) -> None:
    """Give the chunk's outcome rows their ids in batch order: the engine's rows (``outcomes``)
    and the staged entries' rows, interleaved where each entry came."""
    position = 0
    for entry in staged:
        while position < entry.after:
            outcomes[position]["id"] = next(ids)
            position += 1
        entry.outcome_pks = [next(ids) for _ in range(entry.rows)]
    for row in outcomes[position:]:
        row["id"] = next(ids)


class StagedInsert:
    """One ``INSERT … SELECT`` from the stage into ``model``'s table (``flush`` runs it)."""

    def __init__(self, model: type[models.Model], sql: str, params: list[Any]) -> None:
        self.model, self.sql, self.params = model, sql, params

    def flush(self) -> None:
        connection = connections[router.db_for_write(self.model)]
        with connection.cursor() as cursor:
            cursor.execute(self.sql, self.params)


def load(staged: StagedCreates) -> None:
    """Empty the stage tables (creating them on this connection's first use) and load them."""
    connection = connections[router.db_for_write(Client)]
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        for table, columns, rows in (
            (STAGE_CLIENT, _CLIENT_COLUMNS, staged.clients),
            (STAGE_PATIENT, _PATIENT_COLUMNS, staged.patients),
        ):
            types = ", ".join(f"{name} {pg if postgres else lite}" for name, pg, lite in columns)
            # TEMP: private to the connection, never logged; a rollback takes the rows away.
            # PostgreSQL empties it at each commit (a DELETE alone would leave every chunk's
            # rows dead in it: temporary tables are never vacuumed); SQLite's DELETE of every
            # row truncates. The DELETE is for chunks in one caller's transaction.
            keep = " ON COMMIT DELETE ROWS" if postgres else ""
            cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} ({types}){keep}")
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608 (a constant name)
            names = ", ".join(name for name, _, _ in columns)
            if postgres:
                with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            elif rows:
                marks = ", ".join("%s" for _ in columns)
                cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)  # noqa: S608


def inserts(*, run_id: int, clinic_id: int, country: str, now: dt.datetime) -> list[StagedInsert]:
    """The chunk's clients, pets, weighings and outcomes, from the loaded stage."""
    connection = connections[router.db_for_write(Client)]
    postgres = connection.vendor == "postgresql"
    stamp = _datetime_adapter(connection)(now)

    def cast(column: str, sql_type: str) -> str:
        return f"{column}::{sql_type}" if postgres else column

    client: dict[str, str | _Param] = {
        "id": "id",
        "clinic_id": _param(clinic_id),
        "first_name": "first_name",
        "last_name": "last_name",
        "email": "email",
        "phone": "phone",
        "phone_normalized": "phone_normalized",
        "address_line1": "line1",
        "address_line2": "line2",
        "city": "city",
        "state": "state",
        "postcode": "postcode",
        # No country from the PIMS means the clinic's (as the engine's rows).
        "country": _param(country, "COALESCE(NULLIF(country, ''), {})"),
        "is_active": "active",
        "pims_id": "pims_id",
        "pims_seen": _seen(_CLIENT_SEEN, postgres),
        "pims_modified_at": "modified_at",
        "created_at": _param(stamp),
        "updated_at": _param(stamp),
    }
    patient: dict[str, str | _Param] = {
        "id": "id",
        "clinic_id": _param(clinic_id),
        "client_id": "client_id",
        "name": "name",
        "species": "species",
        "breed": "breed",
        "sex": "sex",
        "birth_date": cast("birth_date", "date"),
        "weight": cast("weight", "numeric"),
        "weight_unit": "weight_unit",
        "is_deceased": "deceased",
        "deceased_on": f"CASE WHEN deceased THEN {cast('deceased_on', 'date')} END",
        "microchip": "microchip",
        "is_active": "active",
        "pims_id": "pims_id",
        "pims_seen": _seen(_PATIENT_SEEN, postgres),
        "pims_modified_at": "modified_at",
        "created_at": _param(stamp),
        "updated_at": _param(stamp),
    }
    return [
        _insert_select(Client, client, STAGE_CLIENT, connection),
        _insert_select(Patient, patient, STAGE_PATIENT, connection),
        *_history_inserts(run_id=run_id, stamp=stamp, connection=connection),
    ]


def _history_inserts(*, run_id: int, stamp: Any, connection: Any) -> list[StagedInsert]:
    """The weighings of the new pets and the outcome of every staged record."""
    postgres = connection.vendor == "postgresql"
    weighing: dict[str, str | _Param] = {
        "patient_id": "id",
        "weight": "weight::numeric" if postgres else "weight",
        "unit": "weight_unit",
        "recorded_at": _param(stamp, "COALESCE(modified_at, {})"),
        "source": _param(WeightRecord.Source.PIMS.value),
        "run_id": _param(run_id),
    }
    outcome: dict[str, str | _Param] = {
        "id": "outcome_id",
        "run_id": _param(run_id),
        "kind": "kind",
        "pims_id": "pims_id",
        "outcome": _param(Outcome.CREATED.value),
        "client_id": "client_id",
        "patient_id": "patient_id",
    }
    people = (
        f"SELECT outcome_id, 'client' AS kind, pims_id, id AS client_id, NULL AS patient_id "  # noqa: S608
        f"FROM {STAGE_CLIENT} UNION ALL "
        f"SELECT outcome_id, 'patient', pims_id, client_id, id FROM {STAGE_PATIENT}"
    )
    return [
        _insert_select(
            WeightRecord, weighing, f"{STAGE_PATIENT} WHERE weight IS NOT NULL", connection
        ),
        _insert_select(SyncRecordOutcome, outcome, f"({people}) AS staged", connection),
    ]


# --- building the statements ---------------------------------------------------------------


@dataclass(frozen=True)
class _Param:
    value: Any
    template: str = "{}"


def _param(value: Any, template: str = "{}") -> _Param:
    """A value sent as a query parameter (``template`` places its placeholder)."""
    return _Param(value, template)


def _insert_select(
    model: type[models.Model], values: dict[str, str | _Param], source: str, connection: Any
) -> StagedInsert:
    """INSERT every concrete column of ``model`` from ``source``: an SQL expression or a
    parameter from ``values``, the field's default for a column left out (a primary key left
    out is the database's to give)."""
    columns, exprs, params = [], [], []
    for f in model._meta.concrete_fields:
        value = values.get(f.attname)
        if value is None:
            if f.primary_key:
                continue
            value = _param(f.get_db_prep_save(f.get_default(), connection))
        columns.append(connection.ops.quote_name(f.column))
        if isinstance(value, _Param):
            exprs.append(value.template.format("%s"))
            params.append(value.value)
        else:
            exprs.append(value)
    order = "outcome_id" if model is SyncRecordOutcome else "id"
    sql = (
        f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({', '.join(columns)}) "  # noqa: S608
        f"SELECT {', '.join(exprs)} FROM {source} ORDER BY {order}"
    )
    return StagedInsert(model, sql, params)


def _seen(keys: Sequence[tuple[str, str]], postgres: bool) -> str:
    """``pims_seen`` built by the database from the stage's columns."""
    if postgres:
        pairs = ", ".join(f"'{key}', {column}" for key, column in keys)
        return f"jsonb_build_object({pairs})"
    pairs = ", ".join(
        f"'{key}', json(CASE WHEN {column} THEN 'true' ELSE 'false' END)"
        if key in _BOOLEAN_SEEN
        else f"'{key}', {column}"
        for key, column in keys
    )
    return f"json_object({pairs})"


def _datetime_adapter(connection: Any) -> Callable[[dt.datetime | None], Any]:
    """The database's value of a timestamp, as Django's field would give it.

    On SQLite an aware timestamp is its text in the connection's zone (UTC), which Django's
    adapter reaches through a settings lookup per value: a first copy adapts 250,000, so
    the aware ones take the direct way (a test holds the two to the same text)."""
    adapt = connection.ops.adapt_datetimefield_value
    if connection.vendor != "sqlite" or not settings.USE_TZ:

        def when(value: dt.datetime | None) -> Any:
            return None if value is None else adapt(value)

        return when
    zone = connection.timezone

    def when_sqlite(value: dt.datetime | None) -> Any:
        if value is None or value.utcoffset() is None:
            return adapt(value)
        return str(value.astimezone(zone).replace(tzinfo=None))

    return when_sqlite
