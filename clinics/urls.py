from __future__ import annotations

from django.urls import path

from clinics import prescriber_views, views

app_name = "clinics"

urlpatterns = [
    path("integration/", views.integration_detail, name="integration"),
    path("prescribers/", prescriber_views.prescribers, name="prescribers"),
]
