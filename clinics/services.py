"""Operations on clinics and their integrations. Each owns its transaction and audit row."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from clinics import credentials
from clinics.audit import audit_log
from clinics.models import Integration
from vetsync.pims import ezyvet

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


def integration_record_sync(
    *, clinic_id: int, ok: bool, error: str = "", watermark: datetime | None = None
) -> None:
    """Note the outcome of a sync on the clinic's integration (the "no data since" flag).

    A success moves ``last_successful_sync_at`` (and an ezyVet pull's watermark, never
    backwards) forward and clears the error; a failure keeps the last success and says why.
    """
    integrations = Integration.objects.filter(clinic_id=clinic_id)
    if ok:
        integrations.update(last_successful_sync_at=timezone.now(), last_error="")
        if watermark is not None:
            integrations.filter(Q(watermark__isnull=True) | Q(watermark__lt=watermark)).update(
                watermark=watermark
            )
    else:
        integrations.update(last_error=error[:2000])


# --- ezyVet ----------------------------------------------------------------------------------


class CredentialsError(ValueError):
    """The uploaded credentials cannot be read; the message says what is missing."""


def ezyvet_client(integration: Integration) -> ezyvet.EzyVetClient:
    """A connector for the clinic's ezyVet site, with its stored credentials and time zone."""
    if not integration.base_url:
        raise CredentialsError("The integration has no ezyVet address (base URL).")
    if not integration.has_credentials:
        raise CredentialsError("No ezyVet credentials are stored for this clinic yet.")
    return ezyvet.EzyVetClient(
        integration.base_url,
        ezyvet.credentials_from_mapping(integration.credentials()),
        timezone=integration.clinic.timezone,
    )


def integration_connect_ezyvet(
    *,
    integration: Integration,
    text: str,
    actor: Actor = None,
    request: HttpRequest | None = None,
) -> ezyvet.ConnectionCheck:
    """Store the credentials file ezyVet gave the clinic (encrypted) and try it at once.

    The answer says what is wrong (bad secret, missing scope, unreachable) and never
    contains the secret. Raises ``CredentialsError`` when the file cannot be read.
    """
    try:
        parsed = ezyvet.parse_credentials_file(text)
    except ValueError as exc:
        raise CredentialsError(str(exc)) from exc
    values = {
        "partner_id": parsed.partner_id,
        "client_id": parsed.client_id,
        "client_secret": parsed.client_secret,
        "site_uid": parsed.site_uid,
        "scope": parsed.scope,
    }
    integration_set_credentials(
        integration=integration, values=values, actor=actor, request=request
    )
    try:
        with ezyvet_client(integration) as client:
            check = client.check_connection()
    except CredentialsError as exc:
        check = ezyvet.ConnectionCheck(ok=False, token_ok=False, error=str(exc))
    Integration.objects.filter(pk=integration.pk).update(
        last_error="" if check.ok else f"Connection check: {check.error}"
    )
    integration.refresh_from_db()
    audit_log(
        action="integration.connection_checked",
        actor=actor,
        request=request,
        obj=integration,
        clinic=integration.clinic,
        after={"ok": check.ok, "error": check.error, "missing_scopes": list(check.missing_scopes)},
    )
    return check
