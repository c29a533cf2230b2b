"""The second factor in tests: enrol through the same services as a person, and compute the
code their authenticator app would show next (each TOTP code works once)."""

from __future__ import annotations

import time
from typing import Any

from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinics.two_factor.services import (
    has_two_factor,
    recovery_codes_issue,
    totp_device_confirm,
    totp_device_start,
)


def code_for(device: TOTPDevice) -> str:
    """The next code the device accepts (its window is the step before, now and after)."""
    device.refresh_from_db()
    for offset in range(-device.tolerance, device.tolerance + 1):
        totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift + offset)
        totp.time = time.time()
        if totp.t() > device.last_t:
            return str(totp.token()).zfill(device.digits)
    # Every code of this window is used: a recovery code works instead.
    return recovery_codes_issue(user=device.user)[0]


def enrolled_device(user: Any) -> TOTPDevice:
    """The user's authenticator, set up as a person does if they have none."""
    if not has_two_factor(user):
        device = totp_device_start(user=user)
        totp_device_confirm(device=device, token=code_for(device))
    return TOTPDevice.objects.get(user=user, confirmed=True)


def second_factor_code(user: Any) -> str:
    return code_for(enrolled_device(user))
