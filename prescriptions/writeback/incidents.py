"""Failed rows and incidents: a clinic's incident opens with its first failed row and closes
once nothing is left failed (one alert email each); staff retry or dismiss failed rows; the
counts and stats for the monitor and the onboarding team."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Count, Max
from django.urls import reverse
from django.utils import timezone

from clinics.audit import audit_log
from clinics.emails import render_email
from clinics.models import Clinic
from prescriptions.models import Prescription, WritebackIncident, WritebackItem
from prescriptions.writeback.outbox import (
    Kind,
    Status,
    Target,
    _deliver_next_on_commit,
    _deliver_on_commit,
    _identity,
)


def _incident_open(clinic: Clinic, error: str) -> None:
    if WritebackIncident.objects.filter(clinic=clinic, closed_at__isnull=True).exists():
        return
    try:
        with transaction.atomic():
            incident = WritebackIncident.objects.create(clinic=clinic, first_error=error[:2000])
    except IntegrityError:
        return  # another worker opened it a moment ago: one incident, one email
    from prescriptions.tasks import writeback_incident_alert_task  # tasks import this package

    writeback_incident_alert_task.delay_on_commit(incident.pk)


def _incident_close(clinic: Clinic) -> None:
    """A delivery went through and nothing is left failed: the incident is over."""
    if WritebackItem.objects.filter(clinic=clinic, status=Status.FAILED).exists():
        return
    WritebackIncident.objects.filter(clinic=clinic, closed_at__isnull=True).update(
        closed_at=timezone.now()
    )


def writeback_incident_alert(*, incident_id: int) -> bool:
    """Email the clinic and the onboarding team once for an incident; False if already sent.
    The email is sent before the incident is marked alerted, in one transaction: a failed
    send leaves it unmarked, for the task's retry or the next sweep."""
    with transaction.atomic():
        incident = (
            WritebackIncident.objects.select_for_update(skip_locked=True)
            .select_related("clinic")
            .filter(pk=incident_id, alerted_at__isnull=True)
            .first()
        )
        if incident is None:
            return False
        clinic = incident.clinic
        failed = WritebackItem.objects.filter(clinic=clinic, status=Status.FAILED).count()
        context = {
            "clinic": clinic,
            "incident": incident,
            "failed": failed,
            "monitor_url": settings.SITE_URL.rstrip("/")
            + reverse("prescriptions:writeback-monitor", kwargs={"clinic_slug": clinic.slug})
            + "?status=failed",
        }
        subject, body = render_email("writeback_failing", context)
        recipients = [r for r in (clinic.email, settings.ONBOARDING_TEAM_EMAIL) if r]
        EmailMessage(subject=subject, body=body, to=recipients).send()
        incident.alerted_at = timezone.now()
        incident.save(update_fields=["alerted_at"])
    return True


def incidents_unalerted(*, older_than: dt.timedelta = dt.timedelta(minutes=1)) -> list[int]:
    """Open incidents whose email has not gone out (a failed send): the sweep retries them."""
    return list(
        WritebackIncident.objects.filter(
            closed_at__isnull=True,
            alerted_at__isnull=True,
            opened_at__lt=timezone.now() - older_than,
        ).values_list("pk", flat=True)
    )


class RetryError(ValueError):
    """This row cannot be retried (not failed, or already retried)."""


def writeback_retry(*, item: WritebackItem, actor: Any, request: Any = None) -> WritebackItem:
    """A new attempt for a failed row, linked to it; identifiers are refreshed from the
    records (a pet linked to the PIMS since is now found)."""
    with transaction.atomic():
        original = WritebackItem.objects.select_for_update().get(pk=item.pk)
        if original.status != Status.FAILED:
            raise RetryError("Only a failed writeback can be retried.")
        prescription = Prescription.objects.select_related("patient__client", "vet", "clinic").get(
            pk=original.prescription_id
        )
        payload = dict(original.payload)
        if original.kind == Kind.PRESCRIBE:
            payload.update(_identity(prescription))
        elif original.target == Target.AGENT:
            payload["client_pims_id"] = prescription.patient.client.pims_id
            payload["patient_pims_id"] = prescription.patient.pims_id
        count = WritebackItem.objects.filter(key__startswith=f"{original.key}:retry").count()
        retry = WritebackItem.objects.create(
            clinic=original.clinic,
            prescription=prescription,
            order=original.order,
            kind=original.kind,
            target=original.target,
            sequence=original.sequence,
            key=f"{original.key}:retry{count + 1}",
            payload=payload,
            retry_of=original,
        )
        original.status = Status.RETRIED
        original.save(update_fields=["status"])
        audit_log(
            action="writeback.retried",
            actor=actor,
            request=request,
            clinic=original.clinic,
            obj=retry,
            after={"retry_of": original.pk, "kind": original.kind},
        )
        if retry.target == Target.EZYVET:
            _deliver_on_commit(retry.pk)
    return retry


class DismissError(ValueError):
    """This row cannot be dismissed (only a failed one can)."""


def writeback_dismiss(
    *, item: WritebackItem, actor: Any, reason: str, request: Any = None
) -> WritebackItem:
    """Staff resolve a failed row without sending it (the PIMS was corrected by hand, or the
    change no longer matters); it stops holding back later rows and the clinic's incident."""
    if not reason.strip():
        raise DismissError("Say why this writeback is resolved without sending it.")
    with transaction.atomic():
        row = WritebackItem.objects.select_for_update().get(pk=item.pk)
        if row.status != Status.FAILED:
            raise DismissError("Only a failed writeback can be dismissed.")
        row.status = Status.DISMISSED
        row.last_error = f"{row.last_error}\nDismissed: {reason.strip()}".strip()[:2000]
        row.save(update_fields=["status", "last_error"])
        audit_log(
            action="writeback.dismissed",
            actor=actor,
            request=request,
            clinic=row.clinic,
            obj=row,
            after={"reason": reason.strip()},
        )
        _incident_close(row.clinic)
        _deliver_next_on_commit(row)
    return row


def writeback_counts(*, clinic: Clinic | None = None) -> dict[str, Any]:
    """Counts by status and the last success, for the monitor and the dashboard."""
    rows = WritebackItem.objects.all()
    if clinic is not None:
        rows = rows.filter(clinic=clinic)
    counts = dict.fromkeys(Status.values, 0)
    for row in rows.values("status").order_by().annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    last = rows.filter(status=Status.DELIVERED).aggregate(m=Max("delivered_at"))["m"]
    return {"counts": counts, "last_success": last}
