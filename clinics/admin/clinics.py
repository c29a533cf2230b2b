"""Clinics, with their staff memberships and vets."""

from __future__ import annotations

from django.contrib import admin
from django.utils import timezone

from clinics.admin.audit import AuditedAdmin
from clinics.models import Clinic, Membership, Vet


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class VetInline(admin.TabularInline):
    model = Vet
    extra = 0
    fields = ["first_name", "last_name", "licence_number", "pims_user_id", "user", "is_active"]
    autocomplete_fields = ["user"]


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

    @admin.display(description="integration")
    def integration_status(self, obj: Clinic) -> str:
        integration = getattr(obj, "integration", None)
        if integration is None:
            return "—"
        return f"{integration.get_connector_display()}: {integration.get_status_display()}"

    @admin.display(description="last sync")
    def last_sync(self, obj: Clinic) -> str:
        integration = getattr(obj, "integration", None)
        if integration is None or integration.last_successful_sync_at is None:
            return "never"
        return timezone.localtime(integration.last_successful_sync_at).strftime("%Y-%m-%d %H:%M %Z")


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    list_display = ["user", "clinic", "role", "created_at"]
    list_filter = ["role", "clinic"]
    search_fields = ["user__username", "user__email", "clinic__name"]
    autocomplete_fields = ["user", "clinic"]


@admin.register(Vet)
class VetAdmin(AuditedAdmin):
    list_display = ["__str__", "clinic", "licence_number", "pims_user_id", "user", "is_active"]
    list_filter = ["is_active", "clinic"]
    search_fields = ["first_name", "last_name", "licence_number", "pims_user_id"]
    autocomplete_fields = ["clinic", "user"]
