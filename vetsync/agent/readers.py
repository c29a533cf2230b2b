"""Readers of a practice system: any SQL database SQLAlchemy reaches (read-only), or a folder
of CSV exports. Both read rows through the same mapping and give the same client entries, in
VetSync's batch format, keyed by the client's PIMS id."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vetsync.agent.mapping import EntityMapping, Mapping, MappingError, entry_fields, owner_id


class SourceError(RuntimeError):
    """The practice system cannot be read (unreachable, a table or column missing)."""


class Reader(Protocol):
    def problems(self) -> list[str]:
        """What the mapping names that the source lacks; empty when it can be read."""
        ...

    def rows(self, entity: EntityMapping) -> Iterator[dict[str, Any]]:
        """Each record of ``entity``, keyed by the mapping's column references."""
        ...


@dataclass
class Extract:
    """One reading of the practice system."""

    entries: dict[str, dict[str, Any]]
    orphans: int = 0  # patients whose owner is not among the clients
    duplicates: list[str] = field(default_factory=list)


def read_entries(reader: Reader, mapping: Mapping) -> Extract:
    """Every client with its patients, as batch entries; the practice's order is kept."""
    pets: dict[str, list[dict[str, Any]]] = {}
    for row in reader.rows(mapping.patients):
        fields = entry_fields(row, mapping, mapping.patients)
        pets.setdefault(owner_id(row, mapping.patients), []).append(fields)
    extract = Extract(entries={})
    for row in reader.rows(mapping.clients):
        entry = entry_fields(row, mapping, mapping.clients)
        pims_id = entry["pims_id"]
        if pims_id in extract.entries:
            extract.duplicates.append(pims_id)
            continue
        entry["patients"] = pets.pop(pims_id, [])
        extract.entries[pims_id] = entry
    extract.orphans = sum(len(owned) for owned in pets.values())
    return extract


def _missing(
    mapping: Mapping, available: dict[str, set[str] | None], kind: str, where: str
) -> list[str]:
    """Compare what the mapping needs with what the source has (None: no such table)."""
    problems = []
    for table, columns in sorted(mapping.tables().items()):
        have = available.get(table)
        if have is None:
            problems.append(f"{mapping.path.name}: {kind} {table!r} does not exist in {where}.")
            continue
        lower = {c.lower() for c in have}
        for column in sorted(columns):
            if column.lower() not in lower:
                problems.append(
                    f"{mapping.path.name}: column {column!r} does not exist in {kind} {table!r} "
                    f"(it has: {', '.join(sorted(have))})."
                )
    return problems


# --- SQL ---------------------------------------------------------------------------------------


class SqlReader:
    """Reads through SQLAlchemy on a read-only session: the agent never writes to the
    practice's tables (the table writer has its own connection and user)."""

    def __init__(self, url: str, mapping: Mapping) -> None:
        import sqlalchemy as sa  # the CSV reader needs no SQLAlchemy at import time

        self.sa = sa
        self.mapping = mapping
        self.url = url
        try:
            self.engine = sa.create_engine(url)
        except Exception as exc:
            raise SourceError(f"The practice database URL cannot be used: {exc}") from exc
        sa.event.listen(self.engine, "connect", self._read_only)
        self._tables: dict[str, Any] = {}

    def _read_only(self, dbapi_connection: Any, _record: Any) -> None:
        dialect = self.engine.dialect.name
        statement = {
            "sqlite": "PRAGMA query_only = ON",
            "postgresql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
            "mysql": "SET SESSION TRANSACTION READ ONLY",
        }.get(dialect)
        if statement:
            cursor = dbapi_connection.cursor()
            cursor.execute(statement)
            cursor.close()

    def problems(self) -> list[str]:
        try:
            inspector = self.sa.inspect(self.engine)
            names = set(inspector.get_table_names()) | set(inspector.get_view_names())
            available: dict[str, set[str] | None] = {}
            for table in self.mapping.tables():
                available[table] = (
                    {c["name"] for c in inspector.get_columns(table)} if table in names else None
                )
        except self.sa.exc.SQLAlchemyError as exc:
            return [f"The practice database cannot be read: {exc.__class__.__name__}: {exc}"]
        return _missing(self.mapping, available, "table", "the practice database")

    def _table(self, name: str) -> Any:
        if name not in self._tables:
            self._tables[name] = self.sa.Table(name, self.sa.MetaData(), autoload_with=self.engine)
        return self._tables[name]

    def rows(self, entity: EntityMapping) -> Iterator[dict[str, Any]]:
        sa = self.sa
        try:
            main = self._table(entity.table)
            joined = {
                join.alias: self._table(join.table).alias(join.alias) for join in entity.joins
            }
            source = main
            for join in entity.joins:
                other = joined[join.alias]
                condition = sa.and_(*(main.c[left] == other.c[right] for left, right in join.on))
                source = source.outerjoin(other, condition)
            columns = []
            for ref in entity.columns():
                alias, _, column = ref.rpartition(".")
                columns.append((joined[alias] if alias else main).c[column].label(ref))
            query = sa.select(*columns).select_from(source).order_by(main.c[entity.id_column])
            with self.engine.connect() as connection:
                result = connection.execution_options(yield_per=2000).execute(query)
                for row in result.mappings():
                    yield dict(row)
        except (sa.exc.SQLAlchemyError, KeyError) as exc:
            raise SourceError(f"Reading {entity.section} failed: {exc}") from exc


# --- a folder of CSV exports -------------------------------------------------------------------


class CsvReader:
    """``<table>.csv`` files in a folder (UTF-8, a header row; a BOM is fine). Joins are
    look-ups by the joined file's key column, as a database would do them."""

    def __init__(self, folder: Path, mapping: Mapping) -> None:
        self.folder = folder
        self.mapping = mapping

    def _file(self, table: str) -> Path | None:
        for candidate in (self.folder / f"{table}.csv", self.folder / f"{table}.CSV"):
            if candidate.is_file():
                return candidate
        return None

    def _read(self, table: str) -> Iterator[dict[str, str]]:
        path = self._file(table)
        if path is None:
            raise SourceError(f"{table}.csv is not in {self.folder}.")
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                yield from csv.DictReader(handle)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise SourceError(f"{path} cannot be read: {exc}") from exc

    def problems(self) -> list[str]:
        if not self.folder.is_dir():
            return [f"The export folder {self.folder} does not exist."]
        available: dict[str, set[str] | None] = {}
        for table in self.mapping.tables():
            path = self._file(table)
            if path is None:
                available[table] = None
                continue
            try:
                with path.open(newline="", encoding="utf-8-sig") as handle:
                    available[table] = set(next(csv.reader(handle), []))
            except (OSError, UnicodeDecodeError, csv.Error) as exc:
                return [f"{path} cannot be read: {exc}"]
        return _missing(self.mapping, available, "file", str(self.folder))

    def rows(self, entity: EntityMapping) -> Iterator[dict[str, Any]]:
        lookups = {}
        for join in entity.joins:
            keys = [right for _, right in join.on]
            lookups[join.alias] = {
                tuple(row.get(k, "") for k in keys): row for row in self._read(join.table)
            }
        for row in self._read(entity.table):
            out: dict[str, Any] = {}
            for ref in entity.columns():
                alias, _, column = ref.rpartition(".")
                if alias:
                    join = next(j for j in entity.joins if j.alias == alias)
                    key = tuple(row.get(left, "") for left, _ in join.on)
                    out[ref] = lookups[alias].get(key, {}).get(column)
                else:
                    out[ref] = row.get(column)
            yield out


def make_reader(kind: str, *, url: str, folder: Path | None, mapping: Mapping) -> Reader:
    if kind == "sql":
        return SqlReader(url, mapping)
    if folder is None:
        raise MappingError("A CSV source needs a folder.")
    return CsvReader(folder, mapping)
