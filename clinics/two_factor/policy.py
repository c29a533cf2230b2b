"""Who must pass a second factor: whoever approves, configures or sees every clinic."""

from __future__ import annotations

from typing import Any, NamedTuple

from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinics.access import CARE_GROUP, ONBOARDING_GROUP
from clinics.models import Membership, Role, Vet


class TwoFactorState(NamedTuple):
    enrolled: bool
    required: bool


def two_factor_flags() -> dict[str, Exists]:
    """The four facts the policy needs, as subqueries on a user row: loaded with the user on
    every request (``UserWithTwoFactorBackend``), so the check itself costs no query."""
    return {
        "tf_enrolled": Exists(TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)),
        "tf_approves": Exists(
            Membership.objects.filter(user=OuterRef("pk"), role__in=[Role.VET, Role.ADMIN])
        ),
        "tf_vet": Exists(Vet.objects.filter(user=OuterRef("pk"))),
        "tf_team": Exists(
            get_user_model().groups.through.objects.filter(
                user=OuterRef("pk"), group__name__in=[ONBOARDING_GROUP, CARE_GROUP]
            )
        ),
    }


def two_factor_state(user: Any) -> TwoFactorState:
    """Whether the user has an authenticator, and whether their role needs one.

    Vets (they sign prescriptions), clinic admins, the onboarding team, Pet Owner Care (it
    sees every clinic), staff users and superusers must; clinic staff may. Read from the flags
    the request's user was loaded with, or in one query for any other user object.
    """
    if not getattr(user, "is_authenticated", False):
        return TwoFactorState(enrolled=False, required=False)
    flags: dict[str, Any] = {name: getattr(user, name, None) for name in two_factor_flags()}
    if None in flags.values():
        row = get_user_model().objects.filter(pk=user.pk).values(**two_factor_flags()).first()
        if row is None:
            return TwoFactorState(enrolled=False, required=False)
        flags = dict(row)
    required = bool(
        user.is_superuser
        or user.is_staff
        or flags["tf_approves"]
        or flags["tf_vet"]
        or flags["tf_team"]
    )
    return TwoFactorState(enrolled=bool(flags["tf_enrolled"]), required=required)


def two_factor_required(user: Any) -> bool:
    return two_factor_state(user).required
