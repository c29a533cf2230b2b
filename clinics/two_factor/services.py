"""Enrolment, verification and reset of a user's second factor. Each owns its transaction and
writes the audit row; the views, the admin, the demo and the tests all come through here."""

from __future__ import annotations

from base64 import b32encode
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django_otp import login as otp_login
from django_otp import match_token
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinics.audit import audit_log

RECOVERY_CODE_COUNT = 10
APP_DEVICE_NAME = "Authenticator app"
RECOVERY_DEVICE_NAME = "Recovery codes"


class TwoFactorError(Exception):
    """A second-factor action refused, with a message for the person who tried it."""


def has_two_factor(user: Any) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def totp_device_start(*, user: Any, key: str | None = None) -> TOTPDevice:
    """The user's unconfirmed authenticator device (made once, shown as a QR code until
    confirmed with a code from the app). ``key`` (hex) is only for the demo."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        extra = {"key": key} if key else {}
        device = TOTPDevice.objects.create(
            user=user, name=APP_DEVICE_NAME, confirmed=False, **extra
        )
    return device


def totp_key_base32(device: TOTPDevice) -> str:
    """The secret as an authenticator app's "enter a key" field takes it."""
    return b32encode(device.bin_key).decode("ascii")


def recovery_codes_issue(*, user: Any, request: HttpRequest | None = None) -> list[str]:
    """A fresh set of single-use recovery codes; any earlier set stops working."""
    with transaction.atomic():
        device, _ = StaticDevice.objects.get_or_create(
            user=user, name=RECOVERY_DEVICE_NAME, defaults={"confirmed": True}
        )
        device.token_set.all().delete()
        codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
        StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
        audit_log(action="auth.recovery_codes_issued", actor=user, obj=user, request=request)
    return codes


def totp_device_confirm(
    *, device: TOTPDevice, token: str, request: HttpRequest | None = None
) -> list[str]:
    """Confirm an authenticator with a code it shows; returns the new recovery codes.

    With a request, the session counts as verified from now on.
    """
    if device.confirmed:
        raise TwoFactorError("This authenticator is already set up.")
    allowed, why = device.verify_is_allowed()
    if not allowed:
        raise TwoFactorError(_throttled_message(why))
    if not device.verify_token(token.strip().replace(" ", "")):
        raise TwoFactorError("That code did not match. Check the time on your phone and try again.")
    with transaction.atomic():
        TOTPDevice.objects.filter(user=device.user).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        audit_log(
            action="auth.two_factor_enrolled",
            actor=device.user,
            obj=device.user,
            after={"device": device.name},
            request=request,
        )
    codes = recovery_codes_issue(user=device.user, request=request)
    if request is not None:
        otp_login(request, device)
    return codes


def _throttled_message(why: dict[str, Any] | None) -> str:
    until = (why or {}).get("locked_until")
    if until is not None:
        from django.utils import timezone

        seconds = max(1, int((until - timezone.now()).total_seconds()) + 1)
        return f"Too many wrong codes: wait {seconds} second(s) and try the new code."
    return "Too many wrong codes: wait a little and try the new code."


def two_factor_throttle_message(user: Any) -> str | None:
    """Why codes are refused for now (each wrong code doubles the wait), or None."""
    for device in TOTPDevice.objects.filter(user=user, confirmed=True):
        allowed, why = device.verify_is_allowed()
        if not allowed:
            return _throttled_message(why)
    return None


def two_factor_verify(*, request: HttpRequest, token: str) -> bool:
    """The second step of logging in: a code from the app or an unused recovery code."""
    user = request.user
    device = match_token(user, token.strip().replace(" ", "")[:20])
    if device is None:
        audit_log(action="auth.two_factor_failed", obj=user, request=request)  # type: ignore[arg-type]
        return False
    otp_login(request, device)
    if isinstance(device, StaticDevice):
        left = device.token_set.count()
        audit_log(
            action="auth.recovery_code_used",
            obj=user,  # type: ignore[arg-type]
            after={"codes_left": left},
            request=request,
        )
    return True


def two_factor_reset(*, user: Any, actor: Any, request: HttpRequest | None = None) -> None:
    """Remove a user's authenticator and recovery codes; they enrol again at their next login.

    Only a superuser may reset someone else's: a reset is an account takeover path.
    """
    if actor.pk != user.pk and not actor.is_superuser:
        raise TwoFactorError("Only a superuser may reset someone else's two-factor.")
    with transaction.atomic():
        removed = [d.name for d in TOTPDevice.objects.filter(user=user)]
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
        audit_log(
            action="auth.two_factor_reset",
            actor=actor,
            obj=user,
            before={"devices": removed},
            after={"devices": []},
            request=request,
        )


def demo_devices_enrol(*, usernames: list[str]) -> dict[str, str]:
    """Enrol the demo users who need a second factor, by the path a person takes (start,
    confirm with the app's code); returns each one's key in base32, for an authenticator app."""
    from django.contrib.auth import get_user_model
    from django_otp.oath import TOTP

    from clinics.two_factor.policy import two_factor_state

    keys: dict[str, str] = {}
    for user in get_user_model().objects.filter(username__in=usernames):
        state = two_factor_state(user)
        if not (state.required or state.enrolled):
            continue
        if not state.enrolled:
            device = totp_device_start(user=user)
            totp_device_confirm(device=device, token=str(TOTP(device.bin_key).token()).zfill(6))
        device = TOTPDevice.objects.get(user=user, confirmed=True)
        keys[user.get_username()] = totp_key_base32(device)
    return keys
