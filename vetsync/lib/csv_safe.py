"""CSV that a spreadsheet opens as data, never as formulas (OWASP "CSV Injection"): a text
cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading
apostrophe. Every CSV export writes through ``formula_safe_writer``."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralised(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class FormulaSafeWriter:
    def __init__(self, stream: Any, **options: Any) -> None:
        self._writer = csv.writer(stream, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([neutralised(value) for value in row])


def formula_safe_writer(stream: Any, **options: Any) -> FormulaSafeWriter:
    return FormulaSafeWriter(stream, **options)
