"""The mapping file: which tables and columns of a practice system hold VetSync's fields.

One TOML file serves both readers (SQL and a folder of CSV files). A table is a database
table or ``<table>.csv``; a field names a column of the main table (``first_name``) or of a
joined table (``species.description``); value maps turn the practice's codes into VetSync's
values; constants fill what the practice does not keep. See ``examples/cornerstone.toml``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vetsync.agent.config import ConfigError, load_toml

CLIENT_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "address.line1",
    "address.line2",
    "address.city",
    "address.state",
    "address.postcode",
    "address.country",
    "active",
    "modified_at",
)
PATIENT_FIELDS = (
    "name",
    "species",
    "breed",
    "sex",
    "birth_date",
    "weight",
    "weight_unit",
    "deceased",
    "deceased_on",
    "microchip",
    "active",
    "modified_at",
)
BOOL_FIELDS = {"active", "deceased"}
DATE_FIELDS = {"birth_date", "deceased_on"}
DATETIME_FIELDS = {"modified_at"}
NUMBER_FIELDS = {"weight"}
_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n", ""}


class MappingError(ConfigError):
    """The mapping file cannot be used; the message says where and what to change."""


@dataclass(frozen=True)
class Join:
    table: str
    alias: str
    on: tuple[tuple[str, str], ...]  # (main table column, joined table column)


@dataclass(frozen=True)
class EntityMapping:
    """How one kind of record (clients or patients) is read."""

    section: str
    table: str
    id_column: str
    fields: dict[str, str]
    owner_column: str = ""  # patients only: the column holding the owner's id
    joins: tuple[Join, ...] = ()
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)

    def columns(self) -> list[str]:
        """Every column reference read, main table first ("col" or "alias.col")."""
        refs = [self.id_column] + ([self.owner_column] if self.owner_column else [])
        refs += [ref for ref in self.fields.values() if ref not in refs]
        return refs


@dataclass(frozen=True)
class WritebackTable:
    """Where the table writer inserts a line item: column -> template over the feed item."""

    table: str
    key_column: str
    columns: dict[str, str]


@dataclass(frozen=True)
class Mapping:
    path: Path
    clients: EntityMapping
    patients: EntityMapping
    date_formats: tuple[str, ...]
    datetime_formats: tuple[str, ...]
    writeback: WritebackTable | None

    def tables(self) -> dict[str, set[str]]:
        """Every table the readers touch, with the columns they need from it."""
        needed: dict[str, set[str]] = {}
        for entity in (self.clients, self.patients):
            aliases = {join.alias: join.table for join in entity.joins}
            main = needed.setdefault(entity.table, set())
            for ref in entity.columns():
                alias, _, column = ref.rpartition(".")
                if alias:
                    needed.setdefault(aliases[alias], set()).add(column)
                else:
                    main.add(column)
            for join in entity.joins:
                main.update(left for left, _ in join.on)
                needed.setdefault(join.table, set()).update(right for _, right in join.on)
        return needed


def load_mapping(path: Path) -> Mapping:
    """Read and check a mapping file; ``MappingError`` says what is wrong, and where."""
    raw = load_toml(path, what="mapping file")
    name = path.name
    formats = _table(raw, "formats", name)
    mapping = Mapping(
        path=path,
        clients=_entity(raw, "clients", CLIENT_FIELDS, name),
        patients=_entity(raw, "patients", PATIENT_FIELDS, name),
        date_formats=_formats(formats.get("date", []), name, "date"),
        datetime_formats=_formats(formats.get("datetime", []), name, "datetime"),
        writeback=_writeback(raw.get("writeback"), name),
    )
    if not mapping.patients.owner_column:
        raise MappingError(f"{name}: [patients] needs owner = the column holding the client's id.")
    return mapping


def _table(raw: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise MappingError(f"{where}: [{key}] must be a table.")
    return value


def _text_setting(raw: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise MappingError(f"{where}: {key} is required and must be text.")
    return value.strip()


def _entity(raw: dict[str, Any], section: str, known: tuple[str, ...], name: str) -> EntityMapping:
    body = raw.get(section)
    if not isinstance(body, dict):
        raise MappingError(f"{name}: the [{section}] section is missing.")
    where = f"{name} [{section}]"
    joins = tuple(_join(j, f"{where} joins") for j in body.get("joins", []))
    fields = _table(body, "fields", where)
    _check_fields(fields, known, {join.alias for join in joins}, where, body.get("table"))
    if section == "clients" and not ({"first_name", "last_name"} & set(fields)):
        raise MappingError(f"{where}.fields: map first_name or last_name (a client needs a name).")
    if section == "patients" and "name" not in fields:
        raise MappingError(f"{where}.fields: name must be mapped.")
    values = _table(body, "values", where)
    for target, table in values.items():
        if target not in fields or not isinstance(table, dict):
            raise MappingError(f"{where}.values.{target}: a value map needs a mapped field.")
    constants = _table(body, "constants", where)
    for target in constants:
        if target not in known:
            raise MappingError(f"{where}.constants: {target!r} is not a VetSync field.")
    return EntityMapping(
        section=section,
        table=_text_setting(body, "table", where),
        id_column=_text_setting(body, "id", where),
        owner_column=_text_setting(body, "owner", where, required=False),
        fields={target: ref.strip() for target, ref in fields.items()},
        joins=joins,
        values={target: {str(k): v for k, v in table.items()} for target, table in values.items()},
        constants=constants,
    )


def _check_fields(
    fields: dict[str, Any], known: tuple[str, ...], aliases: set[str], where: str, table: object
) -> None:
    for target, ref in fields.items():
        if target not in known:
            raise MappingError(
                f"{where}.fields: {target!r} is not a VetSync field; known: {', '.join(known)}."
            )
        if not isinstance(ref, str) or not ref.strip():
            raise MappingError(f"{where}.fields: {target} must name a column.")
        alias = ref.rpartition(".")[0]
        if alias and alias not in aliases:
            raise MappingError(
                f"{where}.fields: {target} = {ref!r} reads table {alias!r}, which is not joined "
                f"(add it to joins, or name a column of {table!r})."
            )


def _join(raw: object, where: str) -> Join:
    if not isinstance(raw, dict):
        raise MappingError(f"{where}: each join is a table like {{ table = ..., on = {{...}} }}.")
    table = _text_setting(raw, "table", where)
    on = raw.get("on")
    if not isinstance(on, dict) or not on or not all(isinstance(v, str) for v in on.values()):
        raise MappingError(
            f"{where}: join {table!r} needs on = {{ <column here> = <column of {table}> }}."
        )
    alias = raw.get("as", table)
    return Join(table=table, alias=str(alias), on=tuple((k, str(v)) for k, v in on.items()))


def _formats(raw: object, name: str, kind: str) -> tuple[str, ...]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(f, str) for f in items):
        raise MappingError(f"{name} [formats]: {kind} must be a format or a list of them.")
    return tuple(items)


def _writeback(raw: object, name: str) -> WritebackTable | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise MappingError(f"{name}: [writeback] must be a table.")
    where = f"{name} [writeback]"
    columns = _table(raw, "columns", where)
    if not columns or not all(isinstance(v, str) for v in columns.values()):
        raise MappingError(f"{where}.columns: map each column to a template like '{{order_ref}}'.")
    key = _text_setting(raw, "key", where)
    if key not in columns:
        raise MappingError(
            f"{where}: key column {key!r} must be one of the columns written (it holds the "
            "writeback's id, so that an item is never inserted twice)."
        )
    return WritebackTable(table=_text_setting(raw, "table", where), key_column=key, columns=columns)


# --- from a row of the practice system to the batch format ------------------------------------


def convert(value: Any, target: str, mapping: Mapping, entity: EntityMapping) -> Any:
    """One value as the batch format wants it. What cannot be read is sent as it is, so that
    VetSync quarantines the record with its reason instead of the agent dropping it."""
    table = entity.values.get(target)
    if table is not None:
        key = "" if value is None else str(value).strip()
        if key in table:
            return table[key]
    if target in BOOL_FIELDS:
        return _bool(value)
    if target in DATE_FIELDS:
        return _date(value, mapping.date_formats + mapping.datetime_formats)
    if target in DATETIME_FIELDS:
        return _datetime(value, mapping.datetime_formats)
    if target in NUMBER_FIELDS:
        return _number(value)
    if value is None:
        return ""
    return str(value).strip() if not isinstance(value, str) else value.strip()


def _bool(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return value


def _date(value: Any, formats: tuple[str, ...]) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    for fmt in formats:
        try:
            return dt.datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    try:
        return dt.date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        return text


def _datetime(value: Any, formats: tuple[str, ...]) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    parsed: dt.datetime | None = value if isinstance(value, dt.datetime) else None
    if parsed is None:
        text = str(value).strip()
        for fmt in formats:
            try:
                parsed = dt.datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            try:
                parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return text
    if parsed.tzinfo is None:
        # A practice system keeps local time without a zone; VetSync only compares it.
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _number(value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    try:
        return float(str(value).strip())
    except ValueError:
        return str(value)


def entry_fields(row: dict[str, Any], mapping: Mapping, entity: EntityMapping) -> dict[str, Any]:
    """The batch fields of one row: mapped columns, converted, then the constants."""
    out: dict[str, Any] = {"pims_id": _id(row.get(entity.id_column))}
    for target, ref in entity.fields.items():
        _put(out, target, convert(row.get(ref), target, mapping, entity))
    for target, value in entity.constants.items():
        _put(out, target, value)
    return out


def _id(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "" if value is None else str(value).strip()


def owner_id(row: dict[str, Any], entity: EntityMapping) -> str:
    return _id(row.get(entity.owner_column))


def _put(out: dict[str, Any], target: str, value: Any) -> None:
    group, _, key = target.partition(".")
    if key:
        out.setdefault(group, {})[key] = value
    else:
        out[target] = value
