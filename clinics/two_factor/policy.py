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


def two_factor_state(user: Any) -> TwoFactorState:
    """Whether the user has an authenticator, and whether their role needs one (one query).

    Vets (they sign prescriptions), clinic admins, the onboarding team, Pet Owner Care (it
    sees every clinic), staff users and superusers must; clinic staff may.
    """
    if not getattr(user, "is_authenticated", False):
        return TwoFactorState(enrolled=False, required=False)
    row = (
        get_user_model()
        .objects.filter(pk=user.pk)
        .values(
            enrolled=Exists(TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)),
            approves=Exists(
                Membership.objects.filter(user=OuterRef("pk"), role__in=[Role.VET, Role.ADMIN])
            ),
            vet=Exists(Vet.objects.filter(user=OuterRef("pk"))),
            team=Exists(
                get_user_model().groups.through.objects.filter(
                    user=OuterRef("pk"), group__name__in=[ONBOARDING_GROUP, CARE_GROUP]
                )
            ),
        )
        .first()
    )
    if row is None:
        return TwoFactorState(enrolled=False, required=False)
    required = bool(
        user.is_superuser or user.is_staff or row["approves"] or row["vet"] or row["team"]
    )
    return TwoFactorState(enrolled=row["enrolled"], required=required)


def two_factor_required(user: Any) -> bool:
    return two_factor_state(user).required
