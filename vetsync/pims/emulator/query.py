"""List queries as ezyVet v1 reads them: ``page``/``limit`` and per-field filters.

A filter is ``field=value`` (equality) or URL-encoded JSON such as ``{"gt": 1700000000}`` or
``{"in": ["1", "2"]}``; several comparators in one object are ANDed (a range). Values compare
as numbers when both sides are numbers (ezyVet sends numbers as strings), else as strings,
case-sensitively as ezyVet documents.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain

from vetsync.pims.emulator.data import Record, SiteData

DEFAULT_LIMIT = 10
MAX_LIMIT = 200
COMPARATORS = frozenset({"eq", "neq", "gt", "lt", "gte", "lte", "like", "in"})


class QueryError(ValueError):
    """A malformed list request; answered with 400 naming the offending parameter."""

    def __init__(self, text: str, field: str = "") -> None:
        super().__init__(text)
        self.text = text
        self.field = field


@dataclass(slots=True)
class Condition:
    field: str
    op: str
    value: object
    # For "in": the wanted values as comparison keys, so a 200-id list costs one set lookup.
    keys: frozenset[tuple[str, object]] = frozenset()

    def __post_init__(self) -> None:
        if self.op == "in":
            assert isinstance(self.value, list)
            self.keys = frozenset(_key(v) for v in self.value)

    def test(self, record: Record) -> bool:
        actual = record.get(self.field, "")
        if self.op == "in":
            return _key(actual) in self.keys
        if self.op == "like":
            return _like(str(self.value)).fullmatch(str(actual)) is not None
        order = _compare(actual, self.value)
        return {
            "eq": order == 0,
            "neq": order != 0,
            "gt": order > 0,
            "lt": order < 0,
            "gte": order >= 0,
            "lte": order <= 0,
        }[self.op]


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.strip():
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _key(value: object) -> tuple[str, object]:
    """Equal keys exactly when ``_compare`` finds the values equal."""
    number = _number(value)
    return ("n", number) if number is not None else ("s", "" if value is None else str(value))


def _compare(actual: object, wanted: object) -> int:
    a, b = _number(actual), _number(wanted)
    if a is not None and b is not None:
        return (a > b) - (a < b)
    sa, sb = str(actual), "" if wanted is None else str(wanted)
    return (sa > sb) - (sa < sb)


def _like(pattern: str) -> re.Pattern[str]:
    # SQL LIKE: % is any run, _ is one character, everything else literal.
    parts = (".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts), re.DOTALL)


def parse_conditions(params: dict[str, str], fields: Iterable[str]) -> list[Condition]:
    """Every query parameter but ``page``/``limit`` as conditions; unknown fields are a 400."""
    known = set(fields)
    conditions: list[Condition] = []
    for name, raw in params.items():
        if name in {"page", "limit"}:
            continue
        if name not in known:
            raise QueryError(f"Unknown filter field: {name}.", name)
        stripped = raw.strip()
        if not stripped.startswith("{"):
            conditions.append(Condition(name, "eq", raw))
            continue
        try:
            spec = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise QueryError(f"Filter {name} is not valid JSON: {exc.msg}.", name) from exc
        if not isinstance(spec, dict) or not spec:
            raise QueryError(f"Filter {name} must be an object of comparators.", name)
        for op, value in spec.items():
            if op not in COMPARATORS:
                raise QueryError(
                    f"Unknown comparator {op!r} for {name}; use one of "
                    + ", ".join(sorted(COMPARATORS))
                    + ".",
                    name,
                )
            if op == "in" and not isinstance(value, list):
                raise QueryError(f"Comparator in for {name} takes a list.", name)
            if op != "in" and isinstance(value, list | dict):
                raise QueryError(f"Comparator {op} for {name} takes a single value.", name)
            conditions.append(Condition(name, op, value))
    return conditions


def parse_paging(params: dict[str, str]) -> tuple[int, int]:
    """``(page, limit)``; a limit over 200 is refused rather than clamped (see module docs)."""
    values = {}
    for name, default in (("page", 1), ("limit", DEFAULT_LIMIT)):
        raw = params.get(name, "")
        if raw == "":
            values[name] = default
            continue
        try:
            values[name] = int(raw)
        except ValueError as exc:
            raise QueryError(f"{name} must be a whole number.", name) from exc
    if values["page"] < 1:
        raise QueryError("page must be 1 or more.", "page")
    if not 1 <= values["limit"] <= MAX_LIMIT:
        # Refusing, not clamping: a client that asked for more than it gets would compute
        # pages wrongly; a loud 400 surfaces that bug at once.
        raise QueryError(f"limit must be between 1 and {MAX_LIMIT}.", "limit")
    return values["page"], values["limit"]


def select(
    records: Iterable[Record], conditions: list[Condition], page: int, limit: int
) -> tuple[list[Record], int]:
    """One page of the matching records in id order, and how many matched in all."""
    matched = [r for r in records if all(c.test(r) for c in conditions)]
    start = (page - 1) * limit
    return matched[start : start + limit], len(matched)


def narrow(
    data: SiteData, resource: str, conditions: list[Condition]
) -> tuple[Iterable[Record], list[Condition]]:
    """Candidates through an index, in id order, and the conditions still to test.

    ezyVet answers "contact_id in [200 ids]" from database indexes; scanning 20,000 records
    per call would make the emulator, not the rate limit, the bottleneck. Of the ``eq``/``in``
    conditions, the one that leaves the fewest candidates is used.
    """
    table = data.tables.get(resource, {})
    best: tuple[list[Record], Condition] | None = None
    for condition in conditions:
        if condition.op not in {"eq", "in"}:
            continue
        keys = condition.keys if condition.op == "in" else frozenset({_key(condition.value)})
        if condition.field == "id":
            ids = {_id_text(key) for key in keys}
            rows = [table[i] for i in ids if i in table]
        else:
            index = _index(data, resource, condition.field)
            rows = list(chain.from_iterable(index.get(key, []) for key in keys))
        if best is None or len(rows) < len(best[0]):
            best = (rows, condition)
    if best is None:
        return table.values(), conditions
    rows, used = best
    rest = [c for c in conditions if c is not used]
    if used.op == "in" or used.field == "id":
        rows.sort(key=lambda r: int(str(r["id"])))
    return rows, rest


def _id_text(key: tuple[str, object]) -> str:
    kind, value = key
    if kind == "n" and isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _index(data: SiteData, resource: str, field: str) -> dict[object, list[Record]]:
    cached = data.indexes.get((resource, field))
    if cached is not None and cached[0] == data.version:
        return cached[1]
    index: dict[object, list[Record]] = {}
    for record in data.tables.get(resource, {}).values():  # id order, kept per key
        index.setdefault(_key(record.get(field, "")), []).append(record)
    data.indexes[(resource, field)] = (data.version, index)
    return index
