"""The onboarding team's panel: clinics, integrations, onboarding checklists, memberships,
vets and the audit trail. Django's autodiscovery imports this package; importing the
sub-modules registers their admins."""

from __future__ import annotations

from clinics.admin.audit import AuditedAdmin, AuditEventAdmin
from clinics.admin.clinics import ClinicAdmin, MembershipAdmin, VetAdmin
from clinics.admin.integrations import IntegrationAdmin, IntegrationForm
from clinics.admin.onboarding import (
    OnboardingChecklistAdmin,
    OnboardingPathAdmin,
    OnboardingSummaryAdmin,
)
from clinics.admin.users import AuditedAccessAttemptAdmin, VetSyncUserAdmin

__all__ = [
    "AuditEventAdmin",
    "AuditedAccessAttemptAdmin",
    "AuditedAdmin",
    "ClinicAdmin",
    "IntegrationAdmin",
    "IntegrationForm",
    "MembershipAdmin",
    "OnboardingChecklistAdmin",
    "OnboardingPathAdmin",
    "OnboardingSummaryAdmin",
    "VetAdmin",
    "VetSyncUserAdmin",
]
