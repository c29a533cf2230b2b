from __future__ import annotations

from django.urls import path

from clinics import views

app_name = "clinics"

urlpatterns = [
    path("integration/", views.integration_detail, name="integration"),
]
