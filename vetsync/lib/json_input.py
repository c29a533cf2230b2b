"""JSON from outside (agents, PIMS, uploads), read so that no input can crash the reader and
whatever is kept can be stored: pure Python, no Django (the clinic-side agent imports it)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

# Longer numbers are kept as their text: nothing VetSync reads is that long, and int() of a
# 5,000-digit string raises (CPython's limit is 4,300 digits).
MAX_NUMBER_CHARS = 40
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


class JsonInputError(ValueError):
    """The text is not JSON VetSync can read; the message says why ("nested too deeply",
    "Expecting value: line 1 column 5 (char 4)"), for the caller to put in its sentence."""


def _number_int(text: str) -> int | str:
    return int(text) if len(text) <= MAX_NUMBER_CHARS else text


def _number_float(text: str) -> float | str:
    value = float(text) if len(text) <= MAX_NUMBER_CHARS else math.inf
    return value if math.isfinite(value) else text


def loads(text: str | bytes) -> Any:
    """``json.loads`` that never raises anything but ``JsonInputError``.

    ``NaN``/``Infinity``, numbers too long or too big for a float stay as their text (the
    field's own check then refuses them, record by record); too deep a nesting is refused.
    """
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return json.loads(
            text, parse_int=_number_int, parse_float=_number_float, parse_constant=str
        )
    except UnicodeDecodeError as exc:
        raise JsonInputError(
            f"The body is not valid UTF-8 ({exc.reason} at byte {exc.start})."
        ) from exc
    except RecursionError as exc:
        raise JsonInputError("nested too deeply") from exc
    except json.JSONDecodeError as exc:
        raise JsonInputError(str(exc)) from exc
    except ValueError as exc:
        raise JsonInputError(str(exc)) from exc


class RepeatedKey(JsonInputError):
    """The member ``member_items`` reads appears twice: ``loads`` keeps the last one."""


_WHITESPACE = re.compile(r"[ \t\n\r]*")


def member_items(text: str, key: str, others: dict[str, Any] | None = None) -> Iterator[Any]:
    """The items of the array ``key`` of the top-level object, read one at a time.

    Reads as ``loads`` does, but never holds the whole array: a caller that keeps only what it
    makes of each item holds one item's objects at a time. The object's other members go into
    ``others`` (when given). Raises ``JsonInputError`` as ``loads`` would, and ``RepeatedKey``
    (after the first array's items) when ``key`` appears twice.
    """
    decoder = json.JSONDecoder(parse_int=_number_int, parse_float=_number_float, parse_constant=str)
    try:
        yield from _members(text, key, decoder, {} if others is None else others)
    except JsonInputError:
        raise
    except RecursionError as exc:
        raise JsonInputError("nested too deeply") from exc
    except json.JSONDecodeError as exc:
        raise JsonInputError(str(exc)) from exc
    except (ValueError, IndexError) as exc:
        raise JsonInputError(str(exc) or "unexpected end of the text") from exc


def _members(
    text: str, key: str, decoder: json.JSONDecoder, others: dict[str, Any]
) -> Iterator[Any]:
    skip = _skip
    index = skip(text, 0)
    if text[index : index + 1] != "{":
        raise JsonInputError(f"the top level is not an object with {key!r}")
    index = skip(text, index + 1)
    found = False
    while text[index] != "}":
        if text[index] != '"':
            raise JsonInputError(f"a member name was expected at char {index}")
        name, index = json.decoder.scanstring(text, index + 1)  # type: ignore[attr-defined]
        index = skip(text, index)
        if text[index] != ":":
            raise JsonInputError(f"':' was expected at char {index}")
        index = skip(text, index + 1)
        if name == key and text[index] == "[":
            if found:
                raise RepeatedKey(f"{key!r} appears more than once")
            found = True
            index = skip(text, index + 1)
            while text[index] != "]":
                item, index = decoder.raw_decode(text, index)
                yield item
                index = skip(text, index)
                if text[index] == "," and text[skip(text, index + 1)] != "]":
                    index = skip(text, index + 1)
                elif text[index] != "]":
                    raise JsonInputError(f"',' or ']' was expected at char {index}")
            index += 1
        else:
            others[name], index = decoder.raw_decode(text, index)
            if name == key:
                found = True  # not an array: no items, as a repeat it still counts
        index = skip(text, index)
        if text[index] == "," and text[skip(text, index + 1)] != "}":
            index = skip(text, index + 1)
        elif text[index] != "}":
            raise JsonInputError(f"',' or '}}' was expected at char {index}")
    if skip(text, index + 1) != len(text):
        raise JsonInputError(f"extra data at char {index + 1}")


def _skip(text: str, index: int) -> int:
    """The index of the first character from ``index`` on that is not JSON white space."""
    found = _WHITESPACE.match(text, index)
    return found.end() if found else index


def has_lone_surrogate(text: str) -> bool:
    """A ``\\ud800`` escape without its pair: no database or UTF-8 file can hold it."""
    return bool(_LONE_SURROGATE.search(text))


def storable(value: Any, _depth: int = 0) -> Any:
    """A copy any JSON column can hold: text for non-finite numbers, U+FFFD for lone
    surrogates, NUL characters dropped (PostgreSQL's jsonb refuses them), depth capped."""
    if _depth > 50:
        return "(nested too deeply)"
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value).replace("\x00", "")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, dict):
        return {storable(str(k), _depth + 1): storable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v, _depth + 1) for v in value]
    return storable(str(value), _depth + 1)


class _Elided:
    """Stands for every object of a batch but the envelope (one shared instance)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "…"


ELIDED = _Elided()
_ENVELOPE_KEYS = frozenset({"clients", "batch_id"})


def _envelope_only(pairs: list[tuple[str, Any]]) -> Any:
    return dict(pairs) if any(key in _ENVELOPE_KEYS for key, _ in pairs) else ELIDED


def loads_envelope(text: str) -> Any:
    """Like ``loads``, checking the whole text, but keeping only the object that holds
    ``clients`` (the batch's envelope): every other object becomes ``ELIDED`` as soon as it
    is read, so a 200,000-client batch costs a list of references, not a tree of dicts."""
    try:
        return json.loads(
            text,
            object_pairs_hook=_envelope_only,
            parse_int=_number_int,
            parse_float=_number_float,
            parse_constant=str,
        )
    except RecursionError as exc:
        raise JsonInputError("nested too deeply") from exc
    except json.JSONDecodeError as exc:
        raise JsonInputError(str(exc)) from exc
    except ValueError as exc:
        raise JsonInputError(str(exc)) from exc
