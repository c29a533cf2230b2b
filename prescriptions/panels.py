"""The prescriptions and orders sections of the client and pet pages (records.panels)."""

from __future__ import annotations

from typing import Any

from django.db.models import Case, When
from django.http import HttpRequest

from prescriptions.models import Order, OrderLine, Prescription, PrescriptionItem, RxRequest
from records.models import Client, Patient
from records.panels import Panel

PANEL_ROWS = 10
TITLE = "Prescriptions and orders"
TEMPLATE = "prescriptions/_panel.html"


def _prescriptions(**lookup: object) -> list[Prescription]:
    # One query: the items of the ten newest prescriptions, each with its prescription (and
    # that one's pet, vet and replacement) and product; the rows are grouped back here.
    newest = (Prescription.objects.filter(**lookup).order_by("-created_at", "-pk").values("pk"))[
        :PANEL_ROWS
    ]
    items = PrescriptionItem.objects.filter(prescription__in=newest).select_related(
        "product", "prescription__patient", "prescription__vet", "prescription__replaced_by"
    )
    return _grouped(
        items.order_by("-prescription__created_at", "-prescription__pk", "pk"),
        parent="prescription",
        children="items",
    )


def _orders(**lookup: object) -> list[Order]:
    # One query too: the lines of the ten newest orders, with their order (and pet) and product.
    newest = (Order.objects.filter(**lookup).order_by("-placed_at", "-pk").values("pk"))[
        :PANEL_ROWS
    ]
    lines = OrderLine.objects.filter(order__in=newest).select_related("product", "order__patient")
    return _grouped(
        lines.order_by("-order__placed_at", "-order__pk", "pk"), parent="order", children="lines"
    )


def _grouped(rows: Any, *, parent: str, children: str) -> list[Any]:
    """Child rows (ordered by parent) back into their parents, each parent's ``children``
    prefetched, so ``parent.<children>.all`` costs no query."""
    parents: dict[int, Any] = {}
    for row in rows:
        owner = getattr(row, parent)
        if owner.pk not in parents:
            parents[owner.pk] = owner
            owner._prefetched_objects_cache = {children: []}
        parents[owner.pk]._prefetched_objects_cache[children].append(row)
    return list(parents.values())


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
