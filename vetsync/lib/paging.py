"""The page of a list that a ``?page=`` asks for: every list of the product pages so."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator

from vetsync.lib.numbers import page_number


def page_of(rows: Any, per_page: int, asked: str | None) -> Page[Any]:
    """The page ``asked`` for: the first for anything that is not a page number (0, -1, "x",
    where Django's ``get_page`` would give the last), the last for a number past the end."""
    return Paginator(rows, per_page).get_page(page_number(asked))
