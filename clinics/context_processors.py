"""Navigation context: the user's clinics (for the switcher) and which team areas they may use."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from clinics.access import is_onboarding, is_pet_owner_care
from clinics.models import Membership


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    match = getattr(request, "resolver_match", None)
    current_slug = match.kwargs.get("clinic_slug") if match else None
    memberships = list(
        Membership.objects.filter(user=user).select_related("clinic").order_by("clinic__name")
    )
    current = next((m for m in memberships if m.clinic.slug == current_slug), None)
    return {
        "nav_memberships": memberships,
        "nav_clinic": current.clinic if current else None,
        "nav_membership": current,
        "nav_is_care": is_pet_owner_care(user),
        "nav_is_onboarding": is_onboarding(user),
    }
