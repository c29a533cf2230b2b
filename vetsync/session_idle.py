"""The idle timeout: a session's expiry moves on with use, at most once a minute.

Django's SESSION_SAVE_EVERY_REQUEST would write the session row on every request; marking the
session modified once a minute keeps the timeout (SESSION_COOKIE_AGE after the last use, to
within a minute) for one write a minute per person instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

REFRESH_EVERY = 60  # seconds
KEY = "_vetsync_refreshed_at"


class IdleSessionRefreshMiddleware:
    """Placed after SessionMiddleware: its response step saves what this one marks."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if session is not None and not session.is_empty():
            now = int(time.time())
            if now - int(session.get(KEY, 0)) >= REFRESH_EVERY:
                session[KEY] = now  # modified: SessionMiddleware saves it with a new expiry
        return response
