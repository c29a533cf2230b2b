"""The prescriptions and orders sections of the client and pet pages (records.panels)."""

from __future__ import annotations

from django.http import HttpRequest

from prescriptions.models import Order, Prescription
from records.models import Client, Patient
from records.panels import Panel

PANEL_ROWS = 10


def _prescriptions(**lookup: object) -> list[Prescription]:
    return list(
        Prescription.objects.filter(**lookup)
        .select_related("patient", "vet")
        .prefetch_related("items__product")
        .order_by("-created_at", "-pk")[:PANEL_ROWS]
    )


def _orders(**lookup: object) -> list[Order]:
    return list(
        Order.objects.filter(**lookup)
        .select_related("patient")
        .prefetch_related("lines__product")
        .order_by("-placed_at", "-pk")[:PANEL_ROWS]
    )


def client_prescriptions_panel(request: HttpRequest, client: Client) -> Panel | None:
    return Panel(
        title="Prescriptions and orders",
        template="prescriptions/_panel.html",
        key="prescriptions",
        context={
            "prescriptions": _prescriptions(patient__client=client),
            "orders": _orders(client=client),
            "clinic_slug": client.clinic.slug,
        },
    )


def patient_prescriptions_panel(request: HttpRequest, patient: Patient) -> Panel | None:
    return Panel(
        title="Prescriptions and orders",
        template="prescriptions/_panel.html",
        key="prescriptions",
        context={
            "prescriptions": _prescriptions(patient=patient),
            "orders": _orders(patient=patient),
            "clinic_slug": patient.clinic.slug,
            "patient": patient,
        },
    )
