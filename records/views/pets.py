"""Clinic staff's pet pages: one pet, and renaming it by hand."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_http_methods

from clinics.access import clinic_for_user, get_for_clinic, member_object_or_404
from records.forms import PetRenameForm
from records.history import (
    TIMELINE_LIMIT,
    field_sources,
    name_history,
    patient_rows,
    record_events,
    record_outcomes,
    timeline,
    weight_chart,
)
from records.models import ClientMerge, ManualUpdate, Patient
from records.panels import patient_panels
from records.services import ManualUpdateError, patient_rename, same_name

WEIGHT_LIMIT = 200


@login_required
@require_GET
def patient_detail(request: HttpRequest, clinic_slug: str, patient_id: int) -> HttpResponse:
    """One pet: identity and provenance, owner, weight chart, name history, timeline."""
    pet = member_object_or_404(
        request, clinic_slug, Patient.objects.select_related("client"), pk=patient_id
    )
    clinic = pet.clinic
    weights = list(pet.weights.order_by("-recorded_at", "-id")[:WEIGHT_LIMIT])
    weights.reverse()
    pending = list(
        ManualUpdate.objects.pending()
        .filter(patient=pet)
        .select_related("client", "patient")
        .order_by("created_at", "id")
    )
    merges = (  # only a home-delivery customer has PIMS records merged into it
        list(ClientMerge.objects.filter(customer_id=pet.client_id).order_by("created_at"))
        if pet.client.customer_ref
        else []
    )
    events = record_events(pet)
    outcomes = record_outcomes(pet)
    sources = field_sources(pet, events=events, outcomes=outcomes, merges=merges)
    return TemplateResponse(
        request,
        "records/patient_detail.html",
        {
            "clinic": clinic,
            "pet": pet,
            "owner": pet.client,
            "rows": patient_rows(
                pet,
                sources=sources,
                pending=pending,
                latest_weight=weights[-1] if weights else None,
            ),
            "pending": pending,
            "chart": weight_chart(weights, pet.weight_unit),
            "weights": list(reversed(weights)),
            "renames": name_history(pet, events),
            "timeline": timeline(pet, events=events, outcomes=outcomes),
            "timeline_limit": TIMELINE_LIMIT,
            "panels": patient_panels(request, pet),
            "here": request.get_full_path(),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def patient_rename_view(request: HttpRequest, clinic_slug: str, patient_id: int) -> HttpResponse:
    """Rename a pet by hand: the same animal, a reason, and its prescriptions re-drafted."""
    clinic = clinic_for_user(request, clinic_slug)
    pet = get_for_clinic(Patient.objects.select_related("client"), clinic, pk=patient_id)
    form = PetRenameForm(request.POST or None, initial={"name": pet.name})
    if request.method == "POST" and form.is_valid():
        try:
            renamed = patient_rename(
                patient=pet,
                name=form.cleaned_data["name"],
                reason=form.cleaned_data["reason"],
                same_pet=form.cleaned_data["same_pet"],
                actor=request.user,
                request=request,
            )
        except ManualUpdateError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _renamed_message(pet.name, renamed.name))
            return redirect("records:patient-detail", clinic_slug=clinic.slug, patient_id=pet.pk)
    return TemplateResponse(
        request,
        "records/patient_rename.html",
        {"clinic": clinic, "pet": pet, "form": form, "panels": patient_panels(request, pet)},
    )


def _renamed_message(old: str, new: str) -> str:
    if same_name(old, new):
        return (
            f"Now written {new}. Only the letter case or spacing changed, so its prescriptions "
            "stand as they are."
        )
    return (
        f"Renamed to {new}. Any open prescriptions were ended and re-drafted under the new name "
        "for a vet to approve."
    )
