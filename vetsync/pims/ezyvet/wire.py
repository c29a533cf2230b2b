"""ezyVet v1's wire format as the client and the pull read it: every scalar is a string
(ids, ``"1"``/``"0"`` flags, epoch seconds), and every list item is wrapped in its resource."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from vetsync.lib.numbers import is_ascii_digits
from vetsync.pims.ezyvet.errors import EzyVetProtocolError


def _text(value: object) -> str:
    """Any v1 scalar as the string ezyVet means (v1 sends strings; be lenient with others)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _flag(value: object, *, default: bool = False) -> bool:
    text = _text(value).lower()
    if text in {"1", "true", "yes"}:
        return True
    if text in {"0", "false", "no"}:
        return False
    return default


def _id_order(value: str) -> tuple[int, str]:
    return (int(value), "") if is_ascii_digits(value) and len(value) < 19 else (1 << 62, value)


def _epoch_text(value: object) -> str:
    text = _text(value)
    try:
        return str(int(float(text)))
    except ValueError:
        return text


def _epoch_datetime(value: object) -> dt.datetime | None:
    text = _text(value)
    if not text or text == "0":
        return None
    try:
        return dt.datetime.fromtimestamp(int(float(text)), dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _unwrap(item: object, resource: str) -> dict[str, Any]:
    """``{"contact": {...}}`` -> ``{...}``."""
    if isinstance(item, dict):
        inner = item.get(resource)
        if isinstance(inner, dict):
            return inner
        if len(item) == 1:
            (only,) = item.values()
            if isinstance(only, dict):
                return only
    raise EzyVetProtocolError(f"v1/{resource} sent an item that is not {{{resource!r}: {{…}}}}.")


def _single(body: Mapping[str, Any], resource: str) -> dict[str, Any]:
    items = body.get("items") or []
    if not items:
        raise EzyVetProtocolError(f"v1/{resource} answered without the record.")
    return _unwrap(items[0], resource)
