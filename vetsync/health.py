"""The onboarding team's integration health across every clinic: one row per integration
with the figures of every layer (sync runs from records, writebacks from prescriptions), which
is why it lives in the wiring layer and not in clinics.

At fleet size (thousands of clinics, years of runs and writebacks kept) nothing here reads a
whole table: each figure is a correlated subquery on an index of the clinic's own rows, the
ordering ("needs attention" first) and the filters run in the database, and only one page of
integrations is turned into rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.paginator import Page
from django.db.models import (
    BooleanField,
    Case,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.utils import timezone

from clinics.models import Connector, Integration
from prescriptions.models import WritebackIncident, WritebackItem
from records.models import FullExtract, SyncRun
from vetsync.lib.paging import page_of
from vetsync.lib.subqueries import count_of

RECENT = dt.timedelta(days=7)
PAGE_SIZE = 50
ATTENTION = "attention"
# The states staff filter by: the integration's health (a failing one is "failing" whatever
# its status) and "needs attention".
STATES = [
    (ATTENTION, "Needs attention"),
    (Integration.Status.FAILING.value, "Failing"),
    (Integration.Status.LIVE.value, "Live"),
    (Integration.Status.ONBOARDING.value, "Onboarding"),
    (Integration.Status.PAUSED.value, "Paused"),
]


# What the integration's own row says is wrong: syncs failing (and not paused by staff).
FAILING = Q(failing_since__isnull=False) & ~Q(status=Integration.Status.PAUSED)


@dataclass
class IntegrationHealth:
    integration: Integration
    last_data: dt.datetime | None
    no_data: bool
    runs_failed: int  # in the last RECENT
    last_run_failed: bool
    writebacks_failed: int
    writebacks_waiting: int
    incident: WritebackIncident | None
    extract: FullExtract | None = None  # an agent's latest multi-part first copy
    needs_attention: bool = False


@dataclass
class HealthPage:
    page: Page
    rows: list[IntegrationHealth]
    attention: int  # across every integration, not only the filtered ones
    connector: str
    state: str
    query: str


def integrations_with_health(*, now: dt.datetime | None = None) -> QuerySet[Any]:
    """Every integration with its health figures and ``attention`` (overdue, failing, a
    failed run in the last week, a failed writeback), those first."""
    now = now or timezone.now()
    runs = SyncRun.objects.filter(clinic=OuterRef("clinic_id"))
    writebacks = WritebackItem.objects.filter(clinic=OuterRef("clinic_id"))
    waiting = [
        WritebackItem.Status.PENDING,
        WritebackItem.Status.SENDING,
        WritebackItem.Status.HELD,
    ]
    overdue = Q(status=Integration.Status.LIVE) & (
        Q(last_successful_sync_at__isnull=True)
        | Q(last_successful_sync_at__lt=Value(now) - F("expected_interval"))
    )
    failed_runs = runs.filter(status=SyncRun.Status.FAILED, created_at__gte=now - RECENT)
    failed_writebacks = writebacks.filter(status=WritebackItem.Status.FAILED)
    last_run_status = Subquery(runs.order_by("-created_at").values("status")[:1])
    return (
        Integration.objects.select_related("clinic")
        .annotate(
            # Counted only for the rows shown; ``attention`` (computed for every row, to sort)
            # only asks whether there is one.
            runs_failed=count_of(failed_runs),
            last_run_status=last_run_status,
            writebacks_failed=count_of(failed_writebacks),
            writebacks_waiting=count_of(writebacks.filter(status__in=waiting)),
            overdue=Case(When(overdue, then=Value(True)), default=Value(False)),
        )
        .annotate(
            attention=Case(
                When(
                    # A failed latest run is FAILING already: every run failure sets
                    # ``failing_since`` and every success clears it (its own subquery, one per
                    # integration, cost the sort more than all the rest).
                    Q(overdue=True) | FAILING | Exists(failed_runs) | Exists(failed_writebacks),
                    then=Value(True),
                ),
                default=Value(False),
                output_field=BooleanField(),
            )
        )
        .order_by("-attention", "clinic__name", "pk")
    )


def _filtered(rows: QuerySet[Any], *, connector: str, state: str, query: str) -> QuerySet[Any]:
    if connector in Connector.values:
        rows = rows.filter(connector=connector)
    if state == ATTENTION:
        rows = rows.filter(attention=True)
    elif state == Integration.Status.FAILING:
        rows = rows.filter(FAILING)
    elif state in Integration.Status.values:
        rows = rows.filter(status=state).exclude(FAILING)
    if query:
        rows = rows.filter(Q(clinic__name__icontains=query) | Q(clinic__slug__icontains=query))
    return rows


def integration_health(
    *, params: Mapping[str, str] | None = None, now: dt.datetime | None = None
) -> HealthPage:
    """One page of integrations (filtered by connector, state, clinic name), the ones needing
    attention first, then by clinic name."""
    params = params or {}
    connector = params.get("connector", "")
    state = params.get("state", "")
    query = params.get("q", "").strip()[:100]
    every = integrations_with_health(now=now)
    shown = _filtered(every, connector=connector, state=state, query=query)
    page = page_of(shown, PAGE_SIZE, params.get("page"))
    integrations = list(page.object_list)
    clinic_ids = [i.clinic_id for i in integrations]
    extracts: dict[int, FullExtract] = {}
    for extract in FullExtract.objects.filter(clinic_id__in=clinic_ids).order_by("-pk"):
        extracts.setdefault(extract.clinic_id, extract)
    incidents = {
        incident.clinic_id: incident
        for incident in WritebackIncident.objects.filter(
            clinic_id__in=clinic_ids, closed_at__isnull=True
        )
    }
    rows = [_row(i, incidents, extracts) for i in integrations]
    return HealthPage(
        page=page,
        rows=rows,
        attention=every.filter(attention=True).count(),
        connector=connector,
        state=state,
        query=query,
    )


def _row(
    integration: Integration,
    incidents: dict[int, WritebackIncident],
    extracts: dict[int, FullExtract],
) -> IntegrationHealth:
    annotated = integration.__dict__  # the figures integrations_with_health annotated
    return IntegrationHealth(
        integration=integration,
        last_data=integration.last_successful_sync_at,
        no_data=bool(annotated["overdue"]),
        runs_failed=annotated["runs_failed"],
        last_run_failed=annotated["last_run_status"] == SyncRun.Status.FAILED,
        writebacks_failed=annotated["writebacks_failed"],
        writebacks_waiting=annotated["writebacks_waiting"],
        incident=incidents.get(integration.clinic_id),
        extract=extracts.get(integration.clinic_id),
        needs_attention=bool(annotated["attention"]),
    )
