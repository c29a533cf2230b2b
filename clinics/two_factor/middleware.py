"""Nobody who must pass a second factor (or has chosen to) reaches a page before passing it."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from clinics.two_factor.policy import two_factor_state

# Pages an unverified user may still reach: the second step itself, logging out, static files
# and the doors that are not sessions (agents carry a token; health checks none).
OPEN_PREFIXES = (
    "/accounts/two-factor/",
    "/accounts/logout/",
    "/admin/logout/",
    "/healthz",
    "/metrics",
    "/favicon.ico",
)


class TwoFactorRequiredMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.open_prefixes = (*OPEN_PREFIXES, "/" + settings.STATIC_URL.lstrip("/"), "/api/")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            user.is_authenticated
            and not user.is_verified()  # type: ignore[union-attr,attr-defined]
            and not request.path.startswith(self.open_prefixes)
        ):
            state = two_factor_state(user)
            if state.enrolled:
                return self._redirect(request, "two-factor-verify")
            if state.required:
                return self._redirect(request, "two-factor-enrol")
        return self.get_response(request)

    def _redirect(self, request: HttpRequest, name: str) -> HttpResponse:
        target = f"{reverse(name)}?{urlencode({'next': request.get_full_path()[:2000]})}"
        response = HttpResponseRedirect(target)
        if getattr(request, "htmx", False):
            response["HX-Redirect"] = target
        return response
