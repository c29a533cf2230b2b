"""What an on-premise agent says about itself on each call: its name and version (the
``User-Agent`` header, PIMS.md), when it last reached VetSync, and how fresh its newest data is.
Shown on the clinic's Practice system page and the onboarding team's integration health."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from clinics.models import Integration

# An agent calls several times a minute; the last contact is kept to this precision so that a
# busy agent does not write the integration row on every request.
CONTACT_PRECISION = dt.timedelta(seconds=15)


def integration_agent_contact(*, integration: Integration, user_agent: str) -> None:
    """Record that the clinic's agent called, and the version it named."""
    now = timezone.now()
    version = " ".join(user_agent.split())[:200]
    last = integration.agent_last_contact_at
    if last is not None and now - last < CONTACT_PRECISION and version == integration.agent_version:
        return
    Integration.objects.filter(pk=integration.pk).update(
        agent_last_contact_at=now, agent_version=version
    )
    integration.agent_last_contact_at, integration.agent_version = now, version


def integration_agent_data(*, integration: Integration, data_at: dt.datetime) -> None:
    """The agent delivered data it read at ``data_at``; the newest such moment is kept (a clock
    ahead of ours counts as now, so the data's age is never negative)."""
    data_at = min(data_at, timezone.now())
    current = integration.agent_data_at
    if current is not None and current >= data_at:
        return
    Integration.objects.filter(pk=integration.pk).update(agent_data_at=data_at)
    integration.agent_data_at = data_at
