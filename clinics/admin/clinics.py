"""Clinics, with their staff memberships and vets."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from clinics.admin.audit import AuditedAdmin, ClinicUserChoices
from clinics.admin.filters import AttentionFilter, ClinicFilter, attention_first, with_attention
from clinics.audit import audit_log
from clinics.display import when
from clinics.models import Clinic, Connector, Integration, Membership, Vet
from clinics.prescriber_views import prescribers_context, prescribers_post
from clinics.prescribers import PimsListError, ezyvet_vets, is_ezyvet, may_map_prescribers


def _on_ezyvet(clinic: Clinic | None) -> bool:
    integration = getattr(clinic, "integration", None) if clinic is not None else None
    return integration is not None and integration.connector == Connector.EZYVET


class MembershipInline(ClinicUserChoices, admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class VetForm(forms.ModelForm):
    """A vet's PIMS user typed in the admin: on ezyVet it must be one of the site's vet users
    (picking it on the clinic's Prescribers page is easier)."""

    class Meta:
        model = Vet
        fields = [
            "clinic",
            "first_name",
            "last_name",
            "licence_number",
            "pims_user_id",
            "user",
            "is_active",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        clinic = data.get("clinic") or getattr(self.instance, "clinic", None)
        user_id = (data.get("pims_user_id") or "").strip()
        integration = getattr(clinic, "integration", None) if clinic else None
        if (
            user_id
            and "pims_user_id" in self.changed_data
            and isinstance(integration, Integration)
            and is_ezyvet(integration)
        ):
            try:
                known = {v.user_id for v in ezyvet_vets(integration=integration)}
            except PimsListError as exc:
                raise forms.ValidationError(f"ezyVet's users could not be read: {exc}") from exc
            if user_id not in known:
                self.add_error("pims_user_id", f"ezyVet has no active vet user {user_id}.")
        return data


def _audit_pims_users(request: HttpRequest, formset: Any) -> None:
    """A vet's PIMS user changed in the clinic's inline: the same audit row as the pages."""
    for form in formset.forms:
        vet = form.instance
        if vet.pk and "pims_user_id" in form.changed_data:
            audit_log(
                action="vet.pims_user_changed",
                request=request,
                clinic=vet.clinic,
                obj=vet,
                before={"pims_user_id": form.initial.get("pims_user_id", "")},
                after={"pims_user_id": vet.pims_user_id},
            )


class VetInline(ClinicUserChoices, admin.TabularInline):
    model = Vet
    form = VetForm
    extra = 0
    fields = ["first_name", "last_name", "licence_number", "pims_user_id", "user", "is_active"]
    autocomplete_fields = ["user"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # On ezyVet the vet's user is picked from ezyVet's list (the Prescribers page).
        return ["pims_user_id"] if _on_ezyvet(obj) else []


@admin.register(Clinic)
class ClinicAdmin(AuditedAdmin):
    list_display = [
        "name",
        "slug",
        "city",
        "state",
        "is_active",
        "home_delivery_enabled",
        "writeback_enabled",
        "integration_status",
        "last_sync",
    ]
    list_filter = [
        AttentionFilter,
        "is_active",
        "home_delivery_enabled",
        "writeback_enabled",
        "integration__connector",
        "integration__status",
    ]
    search_fields = ["name", "slug", "city", "postcode", "email", "phone"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline, VetInline]
    list_select_related = ["integration"]
    list_per_page = 50
    fieldsets = [
        (None, {"fields": ["name", "slug", "timezone", "is_active"]}),
        (
            "Contact",
            {
                "fields": [
                    "address_line1",
                    "address_line2",
                    "city",
                    "state",
                    "postcode",
                    "country",
                    "phone",
                    "email",
                ]
            },
        ),
        ("Services", {"fields": ["home_delivery_enabled", "writeback_enabled"]}),
    ]

    readonly_fields = ["prescribers_link"]

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        super().save_formset(request, form, formset, change)
        if formset.model is Vet:
            _audit_pims_users(request, formset)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None:
            fieldsets.append(("Prescribers", {"fields": ["prescribers_link"]}))
        return fieldsets

    @admin.display(description="vets' PIMS users")
    def prescribers_link(self, obj: Clinic) -> str:
        url = reverse("admin:clinics_clinic_prescribers", args=[obj.pk])
        return format_html('<a href="{}">Match each vet with their PIMS user</a>', url)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:clinic_id>/prescribers/",
                self.admin_site.admin_view(self.prescribers_view),
                name="clinics_clinic_prescribers",
            ),
            *super().get_urls(),
        ]

    def prescribers_view(self, request: HttpRequest, clinic_id: int) -> HttpResponse:
        """The onboarding team picks each vet's PIMS user (ezyVet: from the site's users)."""
        clinic = self.get_object(request, str(clinic_id))
        if clinic is None:
            raise Http404("No such clinic.")
        if not may_map_prescribers(request.user, clinic.pk):
            raise PermissionDenied("Only the onboarding team maps prescribers here.")
        url = reverse("admin:clinics_clinic_prescribers", args=[clinic.pk])
        if request.method == "POST":
            prescribers_post(request, clinic)
            return redirect(url)
        context = {
            **self.admin_site.each_context(request),
            **prescribers_context(clinic),
            "title": f"Prescribers of {clinic}",
            "opts": self.model._meta,
            "original": clinic,
            "can_change": True,
            "action_url": url,
        }
        return TemplateResponse(request, "admin/clinics/prescribers.html", context)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Clinic]:
        return with_attention(super().get_queryset(request), via="integration__")

    def get_ordering(self, request: HttpRequest) -> list[Any]:
        return [attention_first("integration__"), "name", "pk"]

    @admin.display(description="integration", ordering="integration__status")
    def integration_status(self, obj: Clinic) -> str:
        integration = getattr(obj, "integration", None)
        if integration is None:
            return "—"
        attention = " · needs attention" if getattr(obj, "needs_attention", False) else ""
        return f"{integration.get_connector_display()}: {integration.health_display}{attention}"

    @admin.display(description="last sync")
    def last_sync(self, obj: Clinic) -> str:
        integration = getattr(obj, "integration", None)
        if integration is None or integration.last_successful_sync_at is None:
            return "never"
        moment = integration.last_successful_sync_at
        return f"{when(moment)} {timezone.localtime(moment):%Z}"


@admin.register(Membership)
class MembershipAdmin(ClinicUserChoices, AuditedAdmin):
    list_display = ["user", "clinic", "role", "created_at"]
    list_filter = ["role", ClinicFilter]
    search_fields = ["user__username", "user__email", "clinic__name"]
    list_per_page = 50
    autocomplete_fields = ["user", "clinic"]


@admin.register(Vet)
class VetAdmin(ClinicUserChoices, AuditedAdmin):
    form = VetForm
    list_display = ["__str__", "clinic", "licence_number", "pims_user_id", "user", "is_active"]
    list_filter = ["is_active", ClinicFilter]
    search_fields = ["first_name", "last_name", "licence_number", "pims_user_id", "clinic__name"]
    list_select_related = ["clinic", "user"]
    list_per_page = 50
    autocomplete_fields = ["clinic", "user"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # On ezyVet the vet's user is picked from ezyVet's list (the clinic's Prescribers).
        return ["pims_user_id"] if obj is not None and _on_ezyvet(obj.clinic) else []
