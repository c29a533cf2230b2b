from __future__ import annotations

from django.urls import path

from clinics.two_factor import views

urlpatterns = [
    path("", views.security, name="two-factor-security"),
    path("verify/", views.verify, name="two-factor-verify"),
    path("enrol/", views.enrol, name="two-factor-enrol"),
    path("recovery-codes/", views.recovery_codes, name="two-factor-recovery-codes"),
    path("reset/", views.reset_own, name="two-factor-reset"),
    path("email/", views.email_own, name="account-email"),
]
