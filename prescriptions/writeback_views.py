"""(in progress this session: the WriteBack monitor)"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse


def _todo(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    raise Http404


writeback_monitor = writeback_detail = writeback_retry = _todo
