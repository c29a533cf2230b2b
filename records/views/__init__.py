"""Clinic staff's record pages and Pet Owner Care's lookup. Thin doors onto queries and services.

One sub-module per area: ``clients``, ``pets``, ``runs`` (sync runs), ``updates`` (the
manual-update queue) and ``care`` (Pet Owner Care, under /care/). The URLconfs route to the
views through this package, as ``views.<name>``.
"""

from __future__ import annotations

from records.views.care import care_client, care_client_change, care_log, care_required, care_search
from records.views.clients import client_detail, client_list, client_unmerge
from records.views.pets import patient_detail, patient_rename_view
from records.views.runs import run_detail, run_list, run_report, run_resume, run_retry, sync_now
from records.views.updates import update_action, update_queue

__all__ = [
    "care_client",
    "care_client_change",
    "care_log",
    "care_required",
    "care_search",
    "client_detail",
    "client_list",
    "client_unmerge",
    "patient_detail",
    "patient_rename_view",
    "run_detail",
    "run_list",
    "run_report",
    "run_resume",
    "run_retry",
    "sync_now",
    "update_action",
    "update_queue",
]
