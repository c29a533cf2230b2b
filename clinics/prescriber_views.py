"""Who each vet is in the PIMS: the clinic admin's Prescribers page (and the same form in the
admin for the onboarding team). On ezyVet the PIMS user is picked from the site's vet users."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_http_methods

from clinics.access import clinic_for_user
from clinics.models import Clinic, Integration, Vet
from clinics.prescribers import (
    PimsListError,
    ezyvet_vets,
    is_ezyvet,
    may_map_prescribers,
    pims_user_name,
    vet_label,
    vet_pims_user_set,
)
from clinics.vet_names import names_differ
from vetsync.lib.numbers import id_from
from vetsync.pims import ezyvet


@dataclass
class PrescriberRow:
    vet: Vet
    current: str  # how the current mapping reads ("" when none)
    known: bool  # ezyVet knows the vet's user (always True off ezyVet: nothing to check)
    other_name: str = ""  # the PIMS user's name, when it is evidently not the vet's
    shared_with: list[Vet] = field(default_factory=list)  # other vets on the same PIMS user


def _rows(
    vets: list[Vet], users: dict[str, ezyvet.EzyVetVet], *, check: bool
) -> list[PrescriberRow]:
    """One row per vet, with what to check: a PIMS user whose name is not the vet's (the page
    already has the site's users: no call per row), and a PIMS user mapped to several vets."""
    by_user: dict[str, list[Vet]] = defaultdict(list)
    for vet in vets:
        if vet.pims_user_id.strip():
            by_user[vet.pims_user_id.strip()].append(vet)
    rows = []
    for vet in vets:
        user = users.get(vet.pims_user_id)
        differs = user is not None and names_differ(
            first_name=vet.first_name,
            last_name=vet.last_name,
            other_first=user.first_name,
            other_last=user.last_name,
        )
        rows.append(
            PrescriberRow(
                vet=vet,
                current=vet_label(user) if user else vet.pims_user_id,
                known=not check or user is not None,
                other_name=pims_user_name(user) if user and differs else "",
                shared_with=[v for v in by_user.get(vet.pims_user_id.strip(), []) if v != vet],
            )
        )
    return rows


def prescribers_context(clinic: Clinic) -> dict[str, Any]:
    """The clinic's vets with their PIMS users and what to check about them, and ezyVet's vet
    users to pick from."""
    integration = Integration.objects.filter(clinic=clinic).first()
    on_ezyvet = is_ezyvet(integration)
    users: dict[str, ezyvet.EzyVetVet] = {}
    error = ""
    if on_ezyvet:
        assert integration is not None
        try:
            users = {v.user_id: v for v in ezyvet_vets(integration=integration)}
        except PimsListError as exc:
            error = exc.plain
    vets = list(Vet.objects.filter(clinic=clinic, is_active=True))
    rows = _rows(vets, users, check=on_ezyvet and not error)
    return {
        "clinic": clinic,
        "on_ezyvet": on_ezyvet,
        "pims_users": [(user_id, vet_label(v)) for user_id, v in users.items()],
        "list_error": error,
        "rows": rows,
        "names_differ": sum(1 for row in rows if row.other_name),
        "shared": sum(1 for row in rows if row.shared_with),
    }


def prescribers_post(request: HttpRequest, clinic: Clinic) -> None:
    """Change one vet's PIMS user from the posted form; the outcome is a message."""
    # id_from, not str.isdigit(): "²" is a digit to isdigit() and no number to the database.
    vet = get_object_or_404(Vet, clinic=clinic, pk=id_from(request.POST.get("vet")) or 0)
    value = request.POST.get("pims_user_id", "")[:50]
    try:
        vet_pims_user_set(vet=vet, pims_user_id=value, actor=request.user, request=request)
    except PimsListError as exc:
        messages.error(request, f"{vet}: {exc.plain}")
    else:
        what = f"PIMS user {value}" if value.strip() else "no PIMS user"
        messages.success(request, f"{vet} is now {what}.")


@login_required
@require_http_methods(["GET", "POST"])
def prescribers(request: HttpRequest, clinic_slug: str) -> HttpResponse:
    """The clinic's vets and who each is in the PIMS; a clinic admin changes it."""
    clinic = clinic_for_user(request, clinic_slug)
    can_change = may_map_prescribers(request.user, clinic.pk)
    if request.method == "POST":
        if not can_change:
            raise PermissionDenied("Only a clinic admin or the onboarding team maps prescribers.")
        prescribers_post(request, clinic)
        return redirect("clinics:prescribers", clinic_slug=clinic.slug)
    context = prescribers_context(clinic) | {"can_change": can_change}
    return TemplateResponse(request, "clinics/prescribers.html", context)
