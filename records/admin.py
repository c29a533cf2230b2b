"""Read-only admin for clients and patients: the onboarding team checks what arrived.

No one, a superuser included, edits them here: a client or a pet changes through VetSync's own
flows (the field policy, manual updates, the rename that re-prescribes, Pet Owner Care's
verified change), each audit-logged; an admin form would bypass all of them unlogged.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from clinics.admin.filters import ClinicFilter
from records.models import Client, Patient

PATIENT_INLINE_FIELDS = (
    "name",
    "species",
    "breed",
    "sex",
    "birth_date",
    "weight",
    "weight_unit",
    "is_deceased",
    "is_active",
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PatientInline(admin.TabularInline):
    model = Patient
    extra = 0
    fields = PATIENT_INLINE_FIELDS
    readonly_fields = PATIENT_INLINE_FIELDS
    can_delete = False
    show_change_link = True


@admin.register(Client)
class ClientAdmin(ReadOnlyAdmin):
    list_display = [
        "last_name",
        "first_name",
        "clinic",
        "email",
        "phone",
        "postcode",
        "customer_ref",
        "is_active",
    ]
    list_filter = [ClinicFilter, "is_active"]
    search_fields = ["first_name", "last_name", "email", "phone", "postcode", "customer_ref"]
    list_select_related = ["clinic"]
    inlines = [PatientInline]
    show_full_result_count = False


@admin.register(Patient)
class PatientAdmin(ReadOnlyAdmin):
    list_display = [
        "name",
        "client",
        "clinic",
        "species",
        "breed",
        "weight",
        "weight_unit",
        "is_deceased",
    ]
    list_filter = [ClinicFilter, "species", "is_deceased"]
    search_fields = ["name", "client__last_name", "microchip"]
    list_select_related = ["client", "clinic"]
    raw_id_fields = ["client"]
    show_full_result_count = False
