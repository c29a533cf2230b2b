"""The onboarding team's admin site: only staff users in the onboarding team may enter."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path


class VetSyncAdminSite(admin.AdminSite):
    index_template = "admin/vetsync_index.html"
    site_header = "VetSync onboarding"
    site_title = "VetSync admin"
    index_title = "Clinics, integrations and onboarding"

    def has_permission(self, request: HttpRequest) -> bool:
        # Imported here: this module loads with the app registry, before models may be.
        from clinics.access import is_onboarding

        return is_onboarding(request.user)

    def get_urls(self) -> list[URLResolver | URLPattern]:
        return [
            path("health/", self.admin_view(self.health_view), name="integration-health"),
            *super().get_urls(),
        ]

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        return super().index(request, {"show_health_link": True, **(extra_context or {})})

    def health_view(self, request: HttpRequest) -> HttpResponse:
        """Every clinic's integration: last data received, runs failing, writebacks failing,
        "no data since"; the ones needing attention first, a page at a time, filtered by
        connector, state and clinic name."""
        from clinics.models import Connector
        from vetsync.health import STATES, integration_health

        health = integration_health(params=request.GET)
        return TemplateResponse(
            request,
            "admin/integration_health.html",
            {
                **self.each_context(request),
                "title": "Integration health",
                "health": health,
                "rows": health.rows,
                "page": health.page,
                "attention": health.attention,
                "connectors": Connector.choices,
                "states": STATES,
            },
        )


class VetSyncAdminConfig(AdminConfig):
    default_site = "vetsync.admin.VetSyncAdminSite"
