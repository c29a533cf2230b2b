"""Products, prescriptions, Rx requests, orders and the WriteBack outbox (built with that issue)."""

from __future__ import annotations
