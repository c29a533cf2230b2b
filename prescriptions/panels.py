"""The prescriptions and orders sections of the client and pet pages (records.panels)."""

from __future__ import annotations

from django.db.models import Case, Prefetch, When
from django.http import HttpRequest

from prescriptions.models import Order, OrderLine, Prescription, PrescriptionItem, RxRequest
from records.models import Client, Patient
from records.panels import Panel

PANEL_ROWS = 10
TITLE = "Prescriptions and orders"
TEMPLATE = "prescriptions/_panel.html"


def _prescriptions(**lookup: object) -> list[Prescription]:
    # Two queries: the rows (with pet and vet), then their items with products.
    return list(
        Prescription.objects.filter(**lookup)
        .select_related("patient", "vet", "replaced_by")
        .prefetch_related(
            Prefetch("items", queryset=PrescriptionItem.objects.select_related("product"))
        )
        .order_by("-created_at", "-pk")[:PANEL_ROWS]
    )


def _orders(**lookup: object) -> list[Order]:
    return list(
        Order.objects.filter(**lookup)
        .select_related("patient")
        .prefetch_related(Prefetch("lines", queryset=OrderLine.objects.select_related("product")))
        .order_by("-placed_at", "-pk")[:PANEL_ROWS]
    )


def _rx_requests(**lookup: object) -> list[RxRequest]:
    # Pending ones first: they are what the clinic (or the caller on the phone) acts on.
    return list(
        RxRequest.objects.filter(**lookup)
        .select_related("patient", "product")
        .order_by(
            Case(When(status=RxRequest.Status.PENDING, then=0), default=1), "-created_at", "-pk"
        )[:PANEL_ROWS]
    )


def _clinic_slug(request: HttpRequest, record: Client | Patient) -> str:
    clinic = getattr(request, "clinic", None)  # set by clinic_for_user: no extra query
    if clinic is not None and clinic.pk == record.clinic_id:
        return str(clinic.slug)
    return record.clinic.slug


def _is_member(request: HttpRequest, clinic_id: int) -> bool:
    """The clinic's own pages link to its prescription pages; Pet Owner Care (no membership)
    sees the same panel without links it could not open. ``clinic_for_user`` has set this."""
    membership = getattr(request, "membership", None)
    return membership is not None and membership.clinic_id == clinic_id


def _panel(request: HttpRequest, record: Client | Patient, **context: object) -> Panel:
    return Panel(
        title=TITLE,
        template=TEMPLATE,
        key="prescriptions",
        context={
            **context,
            "clinic_slug": _clinic_slug(request, record),
            "links": _is_member(request, record.clinic_id),
        },
    )


def client_prescriptions_panel(request: HttpRequest, client: Client) -> Panel | None:
    return _panel(
        request,
        client,
        prescriptions=_prescriptions(patient__client=client),
        orders=_orders(client=client),
        rx_requests=_rx_requests(patient__client=client),
        client=client,
    )


def patient_prescriptions_panel(request: HttpRequest, patient: Patient) -> Panel | None:
    return _panel(
        request,
        patient,
        prescriptions=_prescriptions(patient=patient),
        orders=_orders(patient=patient),
        rx_requests=_rx_requests(patient=patient),
        patient=patient,
    )
