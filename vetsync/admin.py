"""The onboarding team's admin site: only staff users in the onboarding team may enter."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest


class VetSyncAdminSite(admin.AdminSite):
    site_header = "VetSync onboarding"
    site_title = "VetSync admin"
    index_title = "Clinics, integrations and onboarding"

    def has_permission(self, request: HttpRequest) -> bool:
        # Imported here: this module loads with the app registry, before models may be.
        from clinics.access import is_onboarding

        return is_onboarding(request.user)


class VetSyncAdminConfig(AdminConfig):
    default_site = "vetsync.admin.VetSyncAdminSite"
