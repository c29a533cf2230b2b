"""Requests no view should see: a NUL character in the path, the query string or a form
field. PostgreSQL refuses NUL in any text it is given, so such a value would reach a query as
a 500; here it is a 400 with the reason (JSON under /api/, through vetsync.api_errors)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

MESSAGE = "The request contains a NUL character, which no field can hold."


class NulCharacterGuardMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = request.META.get("QUERY_STRING", "")
        if (
            "\x00" in request.path
            or b"\x00" in unquote_to_bytes(query)
            or (
                request.method == "POST"
                and request.content_type == "application/x-www-form-urlencoded"
                and any("\x00" in v for values in request.POST.lists() for v in values[1])
            )
        ):
            return HttpResponseBadRequest(MESSAGE, content_type="text/plain")
        return self.get_response(request)
