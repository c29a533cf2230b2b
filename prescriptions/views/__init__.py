"""The clinic's prescription, Rx-request and order pages (the WriteBack monitor's pages are
in ``prescriptions.writeback_views``). ``prescriptions/urls.py`` reaches them from here."""

from __future__ import annotations

from prescriptions.views.orders import order_action, order_detail, order_list, order_new
from prescriptions.views.prescriptions import (
    prescription_action,
    prescription_detail,
    prescription_list,
    prescription_new,
)
from prescriptions.views.rx_requests import rx_request_detail, rx_request_list

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
]
