"""Business operations on prescriptions, orders, re-prescription and Rx requests.

Each owns its transaction, checks the rules (``prescriptions/rules.py``), writes the audit row,
and writes the WriteBack outbox row in the same transaction as the change that causes it.
The sub-modules hold one sub-domain each; import from here.
"""

from __future__ import annotations

from prescriptions.services.orders import (
    LineSpec,
    autoship_create,
    autoships_due,
    order_cancel,
    order_hold,
    order_place,
    order_release,
    order_ship,
)
from prescriptions.services.prescribing import (
    DEFAULT_VALIDITY,
    MAX_VALIDITY,
    ItemSpec,
    PrescriptionError,
    prescription_approve,
    prescription_create,
    prescription_discard,
    prescription_items_end,
    prescription_mark_paid,
    vet_for_user,
)
from prescriptions.services.represcription import (
    patient_renamed_represcribe,
    patients_deceased_hold,
)
from prescriptions.services.returns import order_return
from prescriptions.services.rx_requests import (
    rx_request_approve,
    rx_request_decline,
    rx_request_note_add,
    rx_request_submit,
    rx_requests_expire_and_remind,
)

__all__ = [
    "DEFAULT_VALIDITY",
    "MAX_VALIDITY",
    "ItemSpec",
    "LineSpec",
    "PrescriptionError",
    "autoship_create",
    "autoships_due",
    "order_cancel",
    "order_hold",
    "order_place",
    "order_release",
    "order_return",
    "order_ship",
    "patient_renamed_represcribe",
    "patients_deceased_hold",
    "prescription_approve",
    "prescription_create",
    "prescription_discard",
    "prescription_items_end",
    "prescription_mark_paid",
    "rx_request_approve",
    "rx_request_decline",
    "rx_request_note_add",
    "rx_request_submit",
    "rx_requests_expire_and_remind",
    "vet_for_user",
]
