"""Who may see what: every clinic page and object goes through these helpers.

A user who is not a member of a clinic gets 404 for it and for everything in it, never a 403
that would confirm it exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.db.models import OuterRef, Subquery
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
    _enter_clinic(request, membership)
    return membership.clinic


def member_object_or_404[M: models.Model](
    request: HttpRequest, clinic_slug: str, queryset: models.QuerySet[M], **lookup: object
) -> M:
    """``clinic_for_user`` and ``get_for_clinic`` in one query, for the pages of one record:
    the object of the clinic named in the URL, its clinic joined and the user's membership
    read alongside; 404 when the user is no member or the object is another clinic's.

    Sets ``request.clinic`` and ``request.membership`` as ``clinic_for_user`` does.
    """
    if not request.user.is_authenticated:
        raise Http404("No such clinic.")
    mine = Membership.objects.filter(user_id=request.user.pk, clinic_id=OuterRef("clinic_id"))
    obj = (
        queryset.select_related("clinic")
        .annotate(
            _member_id=Subquery(mine.values("pk")[:1]),
            _member_role=Subquery(mine.values("role")[:1]),
        )
        .filter(clinic__slug=clinic_slug, _member_id__isnull=False, **lookup)
        .first()
    )
    if obj is None:
        raise Http404("Not found.")
    clinic = obj.clinic  # type: ignore[attr-defined]
    membership = Membership(
        pk=obj._member_id,  # type: ignore[attr-defined]
        user_id=request.user.pk,
        clinic=clinic,
        role=obj._member_role,  # type: ignore[attr-defined]
    )
    _enter_clinic(request, membership)
    return obj


def _enter_clinic(request: HttpRequest, membership: Membership) -> None:
    request.clinic = membership.clinic  # type: ignore[attr-defined]
    request.membership = membership  # type: ignore[attr-defined]
    # The clinic's pages show and offer its own times and dates (ended by the middleware).
    timezone.activate(membership.clinic.zone)


def get_for_clinic[M: models.Model](
    queryset: models.QuerySet[M], clinic: Clinic, **lookup: object
) -> M:
    """One object of this clinic, or 404 (another clinic's object is indistinguishable)."""
    try:
        return queryset.get(clinic=clinic, **lookup)
    except ObjectDoesNotExist as exc:
        raise Http404("Not found.") from exc
