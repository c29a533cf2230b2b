"""Navigation context: the user's clinics (for the switcher) and which team areas they may use."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, ResolverMatch, reverse

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
    for membership in memberships:
        membership.switch_url = _same_page_at(match, membership.clinic.slug)  # type: ignore[attr-defined]
    return {
        "nav_memberships": memberships,
        "nav_clinic": current.clinic if current else None,
        "nav_membership": current,
        "nav_is_care": is_pet_owner_care(user),
        "nav_is_onboarding": is_onboarding(user),
    }


def _same_page_at(match: ResolverMatch | None, slug: str) -> str:
    """The page being looked at, at another clinic: a list page as it is; a page of one
    record (another clinic's id means nothing there), the clinic's dashboard."""
    if match is not None and set(match.kwargs) == {"clinic_slug"} and match.view_name:
        try:
            return reverse(match.view_name, kwargs={"clinic_slug": slug})
        except NoReverseMatch:
            pass
    return reverse("clinic-dashboard", kwargs={"clinic_slug": slug})
