"""Login throttling around django-axes: the page a locked-out person sees, the audit rows for
failed logins, lockouts and unlocks, and the limit on password reset requests."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.forms import PasswordResetForm
from django.contrib.auth.signals import user_login_failed
from django.contrib.auth.views import PasswordResetView
from django.core.cache import cache
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from clinics.audit import audit_log, client_ip

LOCKED_STATUS = 429


def _minutes(value: Any) -> int:
    return max(1, int(value.total_seconds() // 60)) if value is not None else 0


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """django-axes' answer to a locked-out username and address: a plain page, 429."""
    return _refusal(request, minutes=_minutes(settings.AXES_COOLOFF_TIME), reset=False)


def _refusal(request: HttpRequest, *, minutes: int, reset: bool) -> HttpResponse:
    # Rendered now: django-axes answers from its middleware, after responses are rendered.
    response = render(
        request,
        "registration/locked_out.html",
        {
            "minutes": minutes,
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "reset": reset,
            "reset_limit": settings.PASSWORD_RESET_LIMIT_PER_HOUR,
        },
        status=LOCKED_STATUS,
    )
    response["Retry-After"] = str(minutes * 60)
    return response


# django-axes keeps an attempt's username in 255 characters (AccessAttempt, AccessLog).
ATTEMPT_USERNAME_CHARS = 255


def attempt_username(request: Any, credentials: dict[str, Any] | None = None) -> str | None:
    """The username django-axes counts and records a login attempt under (AXES_USERNAME_CALLABLE):
    what was typed, as axes reads it itself, cut to its column. A 5,000-character username
    failed the login pages (the site's and the admin's) with a 500 on PostgreSQL."""
    source = credentials if credentials else getattr(request, "POST", None) or {}
    value = source.get(getattr(settings, "AXES_USERNAME_FORM_FIELD", "username"))
    return None if value is None else str(value)[:ATTEMPT_USERNAME_CHARS]


@receiver(user_login_failed, dispatch_uid="clinics.lockout.login_failed")
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kw: Any) -> None:
    username = str(credentials.get("username") or "")[:150]
    audit_log(
        action="auth.login_failed",
        actor_label=username or "anonymous",
        after={"username": username, "path": getattr(request, "path", "")[:200]},
        request=request if isinstance(request, HttpRequest) else None,
    )


def _locked_out(
    sender: Any, request: Any, username: str | None, ip_address: str, **kw: Any
) -> None:
    audit_log(
        action="auth.locked_out",
        actor_label=(username or "anonymous")[:150],
        after={
            "username": username,
            "ip_address": ip_address,
            "cool_off_minutes": _minutes(settings.AXES_COOLOFF_TIME),
        },
        request=request if isinstance(request, HttpRequest) else None,
    )


def connect_lockout_signals() -> None:
    from axes.signals import user_locked_out

    user_locked_out.connect(_locked_out, dispatch_uid="clinics.lockout.locked_out")


def password_reset_allowed(*, request: HttpRequest, email: str) -> bool:
    """At most PASSWORD_RESET_LIMIT_PER_HOUR requests an hour per address and per email."""
    limit = settings.PASSWORD_RESET_LIMIT_PER_HOUR
    keys = [
        f"pwreset:ip:{client_ip(request) or '-'}",
        f"pwreset:email:{email.strip().lower()[:254]}",
    ]
    allowed = True
    for key in keys:
        cache.add(key, 0, timeout=3600)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=3600)
            count = 1
        allowed = allowed and count <= limit
    if not allowed:
        audit_log(
            action="auth.password_reset_throttled",
            actor_label="anonymous",
            after={"email": email[:254]},
            request=request,
        )
    return allowed


class ThrottledPasswordResetView(PasswordResetView):
    """Django's password reset, refused (429, the lockout page) above the hourly limit."""

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        if not password_reset_allowed(request=self.request, email=form.cleaned_data["email"]):
            return _refusal(self.request, minutes=60, reset=True)
        return super().form_valid(form)
