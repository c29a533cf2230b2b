"""A prescription's, a request's or an order's audit events as lines a person can read."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from clinics.display import event_actor
from clinics.models import AuditEvent
from prescriptions.models import ItemStatus, PrescriptionItem

HISTORY_LIMIT = 200

ACTION_LABELS = {
    "prescription.created": "Written",
    "prescription.approved": "Approved by a vet",
    "prescription.discarded": "Draft discarded",
    "prescription.paid": "Payment recorded",
    "prescription.item_ended": "Item ended",
    "order.placed": "Order placed",
    "order.shipped": "Shipped",
    "order.held": "Put on hold",
    "order.released": "Released from hold",
    "order.cancelled": "Cancelled",
    "order.returned": "Returned",
    "rx_request.submitted": "Requested by the owner",
    "rx_request.approved": "Approved",
    "rx_request.declined": "Declined",
    "rx_request.note_added": "Internal note added",
    "rx_request.expired": "Expired without a decision",
}


def audit_history(obj: Any, *, items: Iterable[PrescriptionItem] = ()) -> list[dict[str, Any]]:
    """The object's audit events, newest first, each with a line a person can read."""
    names = {item.pk: str(item.product) for item in items}
    events = (
        AuditEvent.objects.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk))
        .select_related("actor")
        .order_by("-created_at", "-pk")[:HISTORY_LIMIT]
    )
    rows = []
    for event in events:
        before = event.before if isinstance(event.before, dict) else {}
        after = event.after if isinstance(event.after, dict) else {}
        detail = ""
        if event.action == "prescription.item_ended":
            old, new = before.get("status", ""), after.get("status", "")
            detail = (
                f"{names.get(int(after.get('item') or 0), 'An item')}: "
                f"{status_label(old)} → {status_label(new)}. {after.get('reason', '')}"
            )
        elif "reason" in after:
            detail = str(after["reason"])
        elif event.action == "order.shipped":
            parts = [str(after.get("shipped_on", "")), after.get("carrier"), after.get("tracking")]
            detail = " · ".join(str(p) for p in parts if p)
        rows.append(
            {
                "at": event.created_at,
                "by": event_actor(event),
                "label": ACTION_LABELS.get(event.action, event.action),
                "detail": detail.strip(),
            }
        )
    return rows


def status_label(value: str) -> str:
    return ItemStatus(value).label if value in ItemStatus.values else value
