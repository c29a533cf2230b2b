"""URL map. Every clinic page lives under /c/<clinic-slug>/ and resolves the clinic through
``clinics.access.clinic_for_user``."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from vetsync import views
from vetsync.ops import views as ops_views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", ops_views.healthz, name="healthz"),
    path("metrics", ops_views.metrics_view, name="metrics"),
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
