"""URL map. Every clinic page lives under /c/<clinic-slug>/ and resolves the clinic through
``clinics.access.clinic_for_user``."""

from __future__ import annotations

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic.base import RedirectView

from vetsync import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    # Browsers ask for /favicon.ico on pages without a <link rel=icon> (the admin's).
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("care/", include("records.urls_care")),
    path("api/agent/v1/", include("records.urls_api")),
    path("api/agent/v1/", include("prescriptions.urls_api")),
    path("c/<slug:clinic_slug>/", views.clinic_dashboard, name="clinic-dashboard"),
    path("c/<slug:clinic_slug>/", include("records.urls")),
    path("c/<slug:clinic_slug>/", include("clinics.urls")),
    path("c/<slug:clinic_slug>/", include("prescriptions.urls")),
]
