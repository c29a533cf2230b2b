"""URL map. Every clinic page lives under /c/<clinic-slug>/ and resolves the clinic through
``clinics.access.clinic_for_user``."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from clinics.lockout import ThrottledPasswordResetView
from vetsync import views
from vetsync.ops import views as ops_views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", ops_views.healthz, name="healthz"),
    path("metrics", ops_views.metrics_view, name="metrics"),
    # Browsers ask for /favicon.ico on pages without a <link rel=icon> (the admin's).
    path("favicon.ico", views.favicon, name="favicon"),
    path("accounts/two-factor/", include("clinics.two_factor.urls")),
    path("accounts/password_reset/", ThrottledPasswordResetView.as_view(), name="password_reset"),
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
