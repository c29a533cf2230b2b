"""The onboarding team's integration health across every clinic: one row per integration
with the figures of every layer (sync runs from records, writebacks from prescriptions), which
is why it lives in the wiring layer and not in clinics."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Max, Q
from django.utils import timezone

from clinics.models import Integration
from prescriptions.models import WritebackIncident
from prescriptions.writeback import open_incidents_by_clinic, writeback_stats_by_clinic
from records.models import FullExtract, SyncRun

RECENT = dt.timedelta(days=7)


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

    @property
    def needs_attention(self) -> bool:
        return bool(
            self.no_data or self.last_run_failed or self.runs_failed or self.writebacks_failed
        )


def integration_health(*, now: dt.datetime | None = None) -> list[IntegrationHealth]:
    """Every integration, the ones needing attention first (then by clinic name)."""
    now = now or timezone.now()
    integrations = list(Integration.objects.select_related("clinic").order_by("clinic__name"))
    clinic_ids = [i.clinic_id for i in integrations]
    runs: dict[int, Any] = {
        row["clinic_id"]: row
        for row in SyncRun.objects.filter(clinic_id__in=clinic_ids)
        .values("clinic_id")
        .annotate(
            failed=Count(
                "pk", filter=Q(status=SyncRun.Status.FAILED, created_at__gte=now - RECENT)
            ),
            last=Max("pk"),
        )
    }
    last_failed = set(
        SyncRun.objects.filter(
            pk__in=[row["last"] for row in runs.values()], status=SyncRun.Status.FAILED
        ).values_list("clinic_id", flat=True)
    )
    extracts: dict[int, FullExtract] = {}
    for extract in FullExtract.objects.filter(clinic_id__in=clinic_ids).order_by("-pk"):
        extracts.setdefault(extract.clinic_id, extract)
    writebacks = writeback_stats_by_clinic()
    incidents = open_incidents_by_clinic()
    rows = [
        IntegrationHealth(
            integration=integration,
            last_data=integration.last_successful_sync_at,
            no_data=integration.is_overdue(now),
            runs_failed=runs.get(integration.clinic_id, {}).get("failed", 0),
            last_run_failed=integration.clinic_id in last_failed,
            writebacks_failed=writebacks.get(integration.clinic_id, {}).get("failed", 0),
            writebacks_waiting=writebacks.get(integration.clinic_id, {}).get("pending", 0),
            incident=incidents.get(integration.clinic_id),
            extract=extracts.get(integration.clinic_id),
        )
        for integration in integrations
    ]
    rows.sort(key=lambda row: not row.needs_attention)  # stable: clinic name within each
    return rows
