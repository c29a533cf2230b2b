"""The clinic's prescription, Rx-request, order and WriteBack monitor pages.
``prescriptions/urls.py`` reaches them from here."""

from __future__ import annotations

from prescriptions.views.orders import order_action, order_detail, order_list, order_new
from prescriptions.views.prescriptions import (
    prescription_action,
    prescription_detail,
    prescription_list,
    prescription_new,
)
from prescriptions.views.rx_requests import rx_request_detail, rx_request_list
from prescriptions.views.writeback import (
    writeback_detail,
    writeback_dismiss,
    writeback_monitor,
    writeback_retry,
)

__all__ = [
    "order_action",
    "order_detail",
    "order_list",
    "order_new",
    "prescription_action",
    "prescription_detail",
    "prescription_list",
    "prescription_new",
    "rx_request_detail",
    "rx_request_list",
    "writeback_detail",
    "writeback_dismiss",
    "writeback_monitor",
    "writeback_retry",
]
