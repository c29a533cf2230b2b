"""Who may see what: every clinic page and object goes through these helpers.

A user who is not a member of a clinic gets 404 for it and for everything in it, never a 403
that would confirm it exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.http import Http404, HttpRequest
from django.utils import timezone

from clinics.models import Clinic, Membership

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

ONBOARDING_GROUP = "Onboarding team"
CARE_GROUP = "Pet Owner Care"


def in_group(user: AbstractBaseUser | AnonymousUser, name: str) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    cache = getattr(user, "_vetsync_groups", None)
    if cache is None:
        cache = set(user.groups.values_list("name", flat=True))  # type: ignore[attr-defined]
        user._vetsync_groups = cache  # type: ignore[attr-defined]
    return name in cache


def is_onboarding(user: AbstractBaseUser | AnonymousUser) -> bool:
    """The onboarding team works in /admin/: staff users in the team's group (or superusers)."""
    if not user.is_authenticated or not user.is_active:
        return False
    if getattr(user, "is_superuser", False):
        return True
    return bool(getattr(user, "is_staff", False)) and in_group(user, ONBOARDING_GROUP)


def is_pet_owner_care(user: AbstractBaseUser | AnonymousUser) -> bool:
    return in_group(user, CARE_GROUP)


def clinic_for_user(request: HttpRequest, clinic_slug: str) -> Clinic:
    """The clinic named in the URL, if the user is a member of it; 404 otherwise.

    Sets ``request.clinic`` and ``request.membership`` for the rest of the request.
    """
    membership = (
        Membership.objects.select_related("clinic")
        .filter(user_id=request.user.pk, clinic__slug=clinic_slug)
        .first()
        if request.user.is_authenticated
        else None
    )
    if membership is None:
        raise Http404("No such clinic.")
    request.clinic = membership.clinic  # type: ignore[attr-defined]
    request.membership = membership  # type: ignore[attr-defined]
    # The clinic's pages show and offer its own times and dates (ended by the middleware).
    timezone.activate(membership.clinic.zone)
    return membership.clinic


def get_for_clinic[M: models.Model](
    queryset: models.QuerySet[M], clinic: Clinic, **lookup: object
) -> M:
    """One object of this clinic, or 404 (another clinic's object is indistinguishable)."""
    try:
        return queryset.get(clinic=clinic, **lookup)
    except ObjectDoesNotExist as exc:
        raise Http404("Not found.") from exc
