"""Each request starts in the server's zone (UTC): a clinic page switches to the clinic's zone
(``clinic_for_user`` activates it) and the switch ends with the request, so a thread reused
for the next request, for another clinic or the admin, never inherits it."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone


def clinic_timezone_middleware(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        timezone.deactivate()
        try:
            return get_response(request)
        finally:
            timezone.deactivate()

    return middleware
