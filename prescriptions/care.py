"""Pet Owner Care lookups this app owns: a caller reads out an order or a prescription number
(``ORD-000123``, ``RX-000123``) and the care agent finds the client, whatever the clinic. A
bare number is never taken for an order: it could be a postcode or a phone.

Registered with ``records.care`` from ``PrescriptionsConfig.ready`` (records never imports
this app). Each lookup is one primary-key query, and only for text that is such a number.
"""

from __future__ import annotations

from django.db.models import QuerySet

from prescriptions.models import Order, Prescription
from records.care import CareHit, CareLookup, register_care_lookup


def _owner(rows: QuerySet, reason: str) -> list[CareHit]:
    """The client, or the record it was merged into (the one Pet Owner Care works on)."""
    found = rows.first()
    if found is None:
        return []
    client_id, merged_into_id = found
    return [CareHit(client_id=merged_into_id or client_id, reason=reason)]


def orders_find(text: str) -> list[CareHit]:
    number = Order.number_from_text(text, prefixed=True)
    if number is None:
        return []
    rows = Order.objects.filter(pk=number).values_list("client_id", "client__merged_into_id")
    return _owner(rows, f"order {Order(pk=number).number}")


def prescriptions_find(text: str) -> list[CareHit]:
    number = Prescription.number_from_text(text, prefixed=True)
    if number is None:
        return []
    rows = Prescription.objects.filter(pk=number).values_list(
        "patient__client_id", "patient__client__merged_into_id"
    )
    return _owner(rows, f"prescription {Prescription(pk=number).number}")


ORDER_LOOKUP = CareLookup(key="order_number", label="Order number (ORD-000123)", find=orders_find)
PRESCRIPTION_LOOKUP = CareLookup(
    key="prescription_number", label="Prescription number (RX-000123)", find=prescriptions_find
)


def care_lookups_register() -> None:
    """Idempotent: a lookup is kept by its key."""
    register_care_lookup(ORDER_LOOKUP)
    register_care_lookup(PRESCRIPTION_LOOKUP)
