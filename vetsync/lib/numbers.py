"""Whole numbers in text someone else wrote (query strings, PIMS ids): ASCII digits only.

``str.isdigit()`` is true for "²" and "߁", which ``int()`` then refuses; and a 5,000-digit
id is no id. Pure Python: vetsync.pims uses it too.
"""

from __future__ import annotations

# Bigger than any primary key (a PostgreSQL bigint has 19 digits).
MAX_ID_DIGITS = 18


def is_ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def id_from(text: str | None, *, max_digits: int = MAX_ID_DIGITS) -> int | None:
    """The id written in ``text``, or None when it is not a plain, plausible whole number."""
    if text is None:
        return None
    text = text.strip()
    if not is_ascii_digits(text) or len(text) > max_digits:
        return None
    return int(text)
