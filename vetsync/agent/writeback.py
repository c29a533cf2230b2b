"""WriteBack into the practice: pull VetSync's writeback feed, apply each item through the site's
writer, acknowledge it with the outcome, and never apply an item twice.

Writers, opted into per site:
- ``file`` (the default): one file per item in a drop folder, CSV or JSON lines, for the
  practice's own import. The file is named after the item, written aside and renamed.
- ``table``: an insert into a mapped import table (e.g. a Cornerstone-like patient-history
  line item), through a database user that may write only there. The mapping's key column
  holds the item's id and is looked up first, so an insert is never made twice.
"""

from __future__ import annotations

import csv
import io
import json
import os
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from vetsync.agent.mapping import WritebackTable
from vetsync.agent.state import State
from vetsync.agent.transport import Refused, Unreachable, VetSync

FILE_COLUMNS = (
    "id",
    "kind",
    "client_pims_id",
    "patient_pims_id",
    "product_name",
    "product_reference",
    "qty",
    "instructions",
    "prescriber",
    "shipped_at",
    "status",
    "status_date",
    "returned_at",
    "reason",
    "order_ref",
    "prescription_ref",
    "link",
    "text",
)
TEXTS = {
    "dispense": "Home delivery: {product_name} x {qty}, shipped {shipped_date}, order {order_ref}",
    "status": "Home delivery prescription {prescription_ref}: {product_name} {status} "
    "on {status_date}",
    "return": "Home delivery returned: {product_name} x {qty} on {returned_date}, order "
    "{order_ref} ({reason})",
}


class WriteError(RuntimeError):
    """The item could not be written; the message goes back to VetSync in the ack."""


class Writer(Protocol):
    def write(self, item: dict[str, Any]) -> None: ...


def item_fields(item: dict[str, Any]) -> dict[str, Any]:
    """The feed item plus what templates use: dates without their time, and the line's text."""
    fields = {key: ("" if value is None else value) for key, value in item.items()}
    for key in ("shipped_at", "status_date", "returned_at"):
        fields[key.replace("_at", "_date")] = str(fields.get(key, ""))[:10]
    fields.setdefault("status_date", "")
    template = TEXTS.get(str(item.get("kind")), TEXTS["dispense"])
    fields["text"] = _render(template, fields)
    return fields


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        raise WriteError(f"The item has no {key!r} for the template.")


def _render(template: str, fields: dict[str, Any]) -> Any:
    parsed = list(string.Formatter().parse(template))
    if len(parsed) == 1 and parsed[0][0] == "" and parsed[0][1] and not parsed[0][2]:
        # Exactly "{field}": the value as it is (a number stays a number for the column).
        return _Fields(fields)[parsed[0][1]]
    try:
        return template.format_map(_Fields(fields))
    except (ValueError, IndexError, AttributeError) as exc:
        raise WriteError(f"The template {template!r} cannot be filled: {exc}") from exc


class FileWriter:
    def __init__(self, folder: Path, fmt: str) -> None:
        self.folder = folder
        self.fmt = fmt

    def write(self, item: dict[str, Any]) -> None:
        fields = item_fields(item)
        target = self.folder / f"vetsync-writeback-{int(item['id']):010d}.{self.fmt}"
        if self.fmt == "jsonl":
            text = json.dumps({k: fields.get(k, "") for k in FILE_COLUMNS}, default=str) + "\n"
        else:
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, FILE_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerow({k: _neutral(fields.get(k, "")) for k in FILE_COLUMNS})
            text = buffer.getvalue()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary = target.with_suffix(target.suffix + ".part")
            with temporary.open("w", encoding="utf-8", newline="") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            temporary.replace(target)
        except OSError as exc:
            raise WriteError(f"Cannot write {target}: {exc}") from exc


def _neutral(value: Any) -> Any:
    """A CSV cell that a spreadsheet would run as a formula is written as text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


class TableWriter:
    def __init__(self, url: str, table: WritebackTable) -> None:
        import sqlalchemy as sa

        self.sa = sa
        self.spec = table
        self.engine = sa.create_engine(url)
        self._table: Any = None

    def problems(self) -> list[str]:
        try:
            columns = {c["name"] for c in self.sa.inspect(self.engine).get_columns(self.spec.table)}
        except self.sa.exc.NoSuchTableError:
            return [f"The writeback table {self.spec.table!r} does not exist."]
        except self.sa.exc.SQLAlchemyError as exc:
            return [f"The writeback database cannot be read: {exc}"]
        return [
            f"The writeback table {self.spec.table!r} has no column {column!r}."
            for column in sorted(set(self.spec.columns) - columns)
        ]

    def write(self, item: dict[str, Any]) -> None:
        sa = self.sa
        fields = item_fields(item)
        row = {column: _render(template, fields) for column, template in self.spec.columns.items()}
        try:
            if self._table is None:
                self._table = sa.Table(self.spec.table, sa.MetaData(), autoload_with=self.engine)
            table = self._table
            key = table.c[self.spec.key_column]
            with self.engine.begin() as connection:
                exists = connection.execute(
                    sa.select(key).where(key == row[self.spec.key_column]).limit(1)
                ).first()
                if exists is None:
                    connection.execute(table.insert().values(**row))
        except (sa.exc.SQLAlchemyError, KeyError) as exc:
            raise WriteError(f"The insert into {self.spec.table} failed: {exc}") from exc


@dataclass
class Pulled:
    written: int = 0
    failed: int = 0
    error: str = ""


def writeback_pull(state: State, vetsync: VetSync, writer: Writer) -> Pulled:
    """Every pending item of the feed: applied at most once, acknowledged at least once."""
    pulled = Pulled()
    cursor = int(state.get("feed_cursor", "0") or 0)
    try:
        while True:
            answer = vetsync.feed(cursor).body
            for item in answer.get("items", []):
                ok = _apply(state, writer, item)
                if ok is True:
                    pulled.written += 1
                elif ok is False:
                    pulled.failed += 1
                outcome = state.writeback_state(int(item["id"]))
                assert outcome is not None
                vetsync.ack(int(item["id"]), bool(outcome[1]), outcome[2])
                state.writeback_acked(int(item["id"]))
            cursor = int(answer.get("cursor", cursor))
            state.put("feed_cursor", cursor)
            if not answer.get("more"):
                return pulled
    except Refused as exc:
        if exc.status == 400:  # not an agent-based integration: nothing to write back
            pulled.error = exc.message
            return pulled
        pulled.error = str(exc)
    except Unreachable as exc:
        pulled.error = str(exc)
    return pulled


def _apply(state: State, writer: Writer, item: dict[str, Any]) -> bool | None:
    """Write one item unless it was written before; True/False when written now, else None."""
    item_id = int(item["id"])
    known = state.writeback_state(item_id)
    if known is not None and known[0] != "applying":
        return None  # applied (or failed) before; only its ack is missing
    # Claimed before writing: if the agent dies mid-write, the restart writes it again, and
    # both writers make a second write of one item a no-op (same file name / key looked up).
    state.writeback_claim(item)
    try:
        writer.write(item)
    except WriteError as exc:
        state.writeback_applied(item_id, False, str(exc))
        return False
    except Exception as exc:  # a writer bug must not stop the feed: the clinic is told why
        state.writeback_applied(item_id, False, f"{exc.__class__.__name__}: {exc}")
        return False
    state.writeback_applied(item_id, True, "")
    return True
