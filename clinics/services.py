"""Operations on clinics and their integrations. Each owns its transaction and audit row."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from clinics import credentials
from clinics.audit import audit_log
from clinics.models import Integration

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
    from django.http import HttpRequest

    Actor = AbstractBaseUser | AnonymousUser | None


def integration_set_credentials(
    *,
    integration: Integration,
    values: dict[str, str],
    actor: Actor = None,
    request: HttpRequest | None = None,
) -> Integration:
    """Encrypt and store a PIMS's credentials. The audit row names the keys, never the values."""
    with transaction.atomic():
        integration.credentials_ciphertext = credentials.seal(values)
        integration.credentials_updated_at = timezone.now()
        integration.save(update_fields=["credentials_ciphertext", "credentials_updated_at"])
        audit_log(
            action="integration.credentials_set",
            actor=actor,
            request=request,
            obj=integration,
            clinic=integration.clinic,
            after={"keys": sorted(values)},
        )
    return integration


def integration_issue_agent_token(
    *, integration: Integration, actor: Actor = None, request: HttpRequest | None = None
) -> str:
    """Issue a new bearer token for the clinic's agent; the previous one stops working.

    The token is returned once, to be shown once; only its hash is kept.
    """
    token = credentials.new_agent_token()
    with transaction.atomic():
        replaced = integration.has_agent_token
        integration.agent_token_hash = credentials.hash_agent_token(token)
        integration.agent_token_hint = token[-4:]
        integration.agent_token_issued_at = timezone.now()
        integration.save(
            update_fields=["agent_token_hash", "agent_token_hint", "agent_token_issued_at"]
        )
        audit_log(
            action="integration.agent_token_issued",
            actor=actor,
            request=request,
            obj=integration,
            clinic=integration.clinic,
            after={"hint": integration.agent_token_hint, "replaced_previous": replaced},
        )
    return token


def integration_revoke_agent_token(
    *, integration: Integration, actor: Actor = None, request: HttpRequest | None = None
) -> Integration:
    """Revoke the agent's token: its next request gets 401."""
    with transaction.atomic():
        before = {"hint": integration.agent_token_hint}
        integration.agent_token_hash = ""
        integration.agent_token_hint = ""
        integration.agent_token_issued_at = None
        integration.save(
            update_fields=["agent_token_hash", "agent_token_hint", "agent_token_issued_at"]
        )
        audit_log(
            action="integration.agent_token_revoked",
            actor=actor,
            request=request,
            obj=integration,
            clinic=integration.clinic,
            before=before,
        )
    return integration


def integration_for_agent_token(token: str) -> Integration | None:
    """The integration a bearer token belongs to, or None (unknown, revoked, or not an agent)."""
    if not token.startswith(credentials.AGENT_TOKEN_PREFIX):
        return None
    integration = (
        Integration.objects.select_related("clinic")
        .filter(agent_token_hash=credentials.hash_agent_token(token))
        .first()
    )
    if integration is None or not integration.is_agent or not integration.clinic.is_active:
        return None
    return integration


def integration_set_status(
    *,
    integration: Integration,
    status: Integration.Status,
    actor: Actor = None,
    request: HttpRequest | None = None,
) -> Integration:
    """Pause, resume or mark an integration live, with an audit row."""
    with transaction.atomic():
        before = {"status": integration.status}
        integration.status = status
        integration.save(update_fields=["status", "updated_at"])
        audit_log(
            action="integration.status_changed",
            actor=actor,
            request=request,
            obj=integration,
            clinic=integration.clinic,
            before=before,
            after={"status": status},
        )
    return integration


def integration_record_sync(*, clinic_id: int, ok: bool, error: str = "") -> None:
    """Note the outcome of a sync on the clinic's integration (the "no data since" flag).

    A success moves ``last_successful_sync_at`` forward and clears the error; a failure keeps
    the last success and records why.
    """
    integrations = Integration.objects.filter(clinic_id=clinic_id)
    if ok:
        integrations.update(last_successful_sync_at=timezone.now(), last_error="")
    else:
        integrations.update(last_error=error[:2000])
