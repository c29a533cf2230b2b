"""Business operations on clients and patients. Each owns its transaction and audit row."""

from __future__ import annotations

from django.db.models import Count, Q

from clinics.models import Clinic
from records.models import Client, Patient


def clinic_record_counts(*, clinic: Clinic) -> dict[str, int]:
    """The record counts on a clinic's dashboard, in two queries."""
    clients = Client.objects.for_clinic(clinic).aggregate(
        total=Count("id"), home_delivery=Count("id", filter=~Q(customer_ref=""))
    )
    patients = Patient.objects.for_clinic(clinic).aggregate(
        total=Count("id"), deceased=Count("id", filter=Q(is_deceased=True))
    )
    return {
        "clients": clients["total"],
        "home_delivery_customers": clients["home_delivery"],
        "patients": patients["total"],
        "deceased_patients": patients["deceased"],
    }
