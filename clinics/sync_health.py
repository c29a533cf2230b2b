"""When a clinic's ezyVet site is pulled next, and what a failing spell does to that.

- Slots: each clinic pulls at a fixed offset within its interval (``pull_slot_next``), so a
  thousand hourly clinics spread over the hour instead of all falling due at :00. The offset
  comes from the clinic's id by the golden ratio, which spreads consecutive ids evenly.
- Back-off: each failure in a row pushes the next pull further away (5, 10, 20 … minutes, at
  most ``EZYVET_BACKOFF_MAX``); a success resets the count, and the next pull is the slot.
- Incidents: a failing spell runs from the first failure to the next success. The clinic and
  the onboarding team are emailed once per spell, once ``SYNC_FAILURE_ALERT_AFTER`` syncs in a
  row have failed (one blip is not news); a success closes the spell.
"""

from __future__ import annotations

import datetime as dt
import math

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from clinics.emails import render_email
from clinics.models import Connector, Integration

GOLDEN = (math.sqrt(5) - 1) / 2


def pull_slot_offset(*, clinic_id: int, interval: dt.timedelta) -> dt.timedelta:
    """Where in each interval this clinic's pull falls (stable for the clinic)."""
    fraction = (clinic_id * GOLDEN) % 1.0
    return dt.timedelta(seconds=int(fraction * interval.total_seconds()))


def pull_slot_next(*, clinic_id: int, interval: dt.timedelta, after: dt.datetime) -> dt.datetime:
    """The clinic's first slot strictly after ``after``: epoch time ≡ its offset (mod interval)."""
    period = max(int(interval.total_seconds()), 1)
    offset = int(pull_slot_offset(clinic_id=clinic_id, interval=interval).total_seconds())
    now = int(after.timestamp())
    wait = (offset - now) % period or period
    return dt.datetime.fromtimestamp(now + wait, dt.UTC)


def pull_backoff(*, failures: int) -> dt.timedelta:
    """How long after its ``failures``-th failure in a row a site is tried again."""
    first = settings.EZYVET_BACKOFF_FIRST
    ceiling = settings.EZYVET_BACKOFF_MAX
    if failures <= 0:
        return dt.timedelta(0)
    return min(first * 2 ** min(failures - 1, 30), ceiling)


def integration_sync_failed(*, clinic_id: int, now: dt.datetime) -> None:
    """Count the failure, back the site off, and alert once the spell is long enough."""
    from clinics.tasks import integration_failing_alert_task  # the tasks import this module

    with transaction.atomic():
        integration = Integration.objects.select_for_update().filter(clinic_id=clinic_id).first()
        if integration is None:
            return
        failures = integration.failures + 1
        fields: dict[str, object] = {"failures": failures}
        if integration.connector == Connector.EZYVET:
            fields["next_pull_at"] = now + pull_backoff(failures=failures)
        Integration.objects.filter(pk=integration.pk).update(**fields)
        if failures >= settings.SYNC_FAILURE_ALERT_AFTER and integration.failure_alerted_at is None:
            integration_failing_alert_task.delay_on_commit(integration.pk)


# What a success writes to end a failing spell: the count and the alert start afresh (written
# with the success's other fields in ``clinics.services.integration_record_sync``).
SPELL_ENDED = {"failures": 0, "failure_alerted_at": None}


def integration_failing_alert(*, integration_id: int) -> bool:
    """Email the clinic and the onboarding team that syncs are failing; once per spell.

    The row is claimed under a lock and marked in the same transaction as the send, so two
    workers never both send, and a failed send leaves it for the next failure's task."""
    with transaction.atomic():
        integration = (
            Integration.objects.select_for_update(skip_locked=True)
            .select_related("clinic")
            .filter(
                pk=integration_id,
                failure_alerted_at__isnull=True,
                failing_since__isnull=False,
                failures__gte=settings.SYNC_FAILURE_ALERT_AFTER,
            )
            .exclude(status=Integration.Status.PAUSED)
            .first()
        )
        if integration is None:
            return False
        clinic = integration.clinic
        context = {
            "clinic": clinic,
            "integration": integration,
            "problem": integration.problem,
            "next_pull_at": integration.next_pull_at,
            "page_url": settings.SITE_URL.rstrip("/")
            + reverse("clinics:integration", kwargs={"clinic_slug": clinic.slug}),
        }
        subject, body = render_email("sync_failing", context)
        recipients = [r for r in (clinic.email, settings.ONBOARDING_TEAM_EMAIL) if r]
        EmailMessage(subject=subject, body=body, to=recipients).send()
        Integration.objects.filter(pk=integration.pk).update(failure_alerted_at=timezone.now())
    return True


def integrations_failing_unalerted() -> list[int]:
    """Spells long enough to alert whose email has not gone out (a failed send)."""
    return list(
        Integration.objects.filter(
            failure_alerted_at__isnull=True,
            failing_since__isnull=False,
            failures__gte=settings.SYNC_FAILURE_ALERT_AFTER,
        )
        .exclude(status=Integration.Status.PAUSED)
        .values_list("pk", flat=True)
    )
