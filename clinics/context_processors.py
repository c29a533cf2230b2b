"""Navigation context: the user's clinics (for the switcher) and which team areas they may use.

What the navigation shows is kept in the cache for a minute (and dropped when a membership or
the user's groups change), so a page does not pay two queries for its menu; who may open the
page is still decided afresh by ``clinic_for_user``.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
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
    key = nav_cache_key(user.pk, user.date_joined)
    cached = cache.get(key)
    if cached is None:
        memberships = list(
            Membership.objects.filter(user=user).select_related("clinic").order_by("clinic__name")
        )
        cached = (memberships, is_pet_owner_care(user), is_onboarding(user))
        cache.set(key, cached, NAV_CACHE_SECONDS)
    memberships, is_care, is_onboarding_team = cached
    current = getattr(request, "membership", None)
    if current is None or current.clinic.slug != current_slug:
        current = next((m for m in memberships if m.clinic.slug == current_slug), None)
    for membership in memberships:
        membership.switch_url = _same_page_at(match, membership.clinic.slug)  # type: ignore[attr-defined]
    return {
        "nav_memberships": memberships,
        "nav_clinic": current.clinic if current else None,
        "nav_membership": current,
        "nav_is_care": is_care,
        "nav_is_onboarding": is_onboarding_team,
    }


NAV_CACHE_SECONDS = 60


def nav_cache_key(user_id: int, joined: Any) -> str:
    stamp = joined.timestamp() if joined is not None else 0
    return f"vetsync:nav:{user_id}:{stamp:.6f}"


def nav_cache_forget(user: Any) -> None:
    """Drop a user's cached navigation (a membership or a group changed)."""
    if user is not None and user.pk:
        cache.delete(nav_cache_key(user.pk, user.date_joined))


def _same_page_at(match: ResolverMatch | None, slug: str) -> str:
    """The page being looked at, at another clinic: a list page as it is; a page of one
    record (another clinic's id means nothing there), the clinic's dashboard."""
    if match is not None and set(match.kwargs) == {"clinic_slug"} and match.view_name:
        try:
            return reverse(match.view_name, kwargs={"clinic_slug": slug})
        except NoReverseMatch:
            pass
    return reverse("clinic-dashboard", kwargs={"clinic_slug": slug})
