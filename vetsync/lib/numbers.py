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


def page_number(text: str | None) -> int:
    """The ``?page=`` asked for, and 1 for anything that is not a page number (0, -1, "x").

    For Django's ``Paginator.get_page`` every out-of-range number is past the end, so 0 and
    -1 would give the last page; past the end it still gives the last page."""
    return id_from(text) or 1
