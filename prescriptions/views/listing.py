"""What every list page of prescriptions, orders, Rx requests and WriteBack shares: a page of
fifty rows, and search-as-you-type swapping only the results."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page
from django.http import HttpRequest

from vetsync.lib.paging import page_of

PAGE_SIZE = 50


def list_page(request: HttpRequest, rows: Any) -> Page[Any]:
    """The ``?page=`` asked for (the last one past the end; the first for anything else)."""
    return page_of(rows, PAGE_SIZE, request.GET.get("page"))


def list_template(request: HttpRequest, template: str, results_id: str) -> str:
    """The whole page, or only its ``results_id`` partial when htmx asks to swap that."""
    if request.htmx.target == results_id:  # type: ignore[attr-defined]
        return f"{template}#{results_id}"
    return template
