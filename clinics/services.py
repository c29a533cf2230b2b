"""Operations on clinics and their integrations. Each owns its transaction and audit row."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from clinics import credentials
from clinics.audit import audit_log
from clinics.ezyvet_limits import call_counter, shared_limiter
from clinics.models import (
    Integration,
    StepTrigger,
)
from clinics.onboarding import onboarding_first_data_claim, onboarding_steps_complete
from clinics.problems import ProblemKind
from clinics.sync_health import SPELL_ENDED, integration_sync_failed
from vetsync.pims import ezyvet
from vetsync.pims.ezyvet.shared_limits import PULL

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
        onboarding_steps_complete(
            integration=integration, trigger=StepTrigger.CREDENTIALS_STORED, actor=actor
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
    *,
    clinic_id: int,
    ok: bool,
    error: str = "",
    kind: str = "",
    watermark: datetime | None = None,
) -> None:
    """Note the outcome of a sync on the clinic's integration (the "no data since" flag).

    A success moves ``last_successful_sync_at`` (and an ezyVet pull's watermark, never
    backwards) forward and clears the error; a failure keeps the last success, says why
    (``kind``: a ``ProblemKind``) and since when syncs fail, and backs the site off
    (``clinics.sync_health``).
    """
    integrations = Integration.objects.filter(clinic_id=clinic_id)
    now = timezone.now()
    if ok:
        integrations.update(
            last_successful_sync_at=now,
            last_error="",
            failing_since=None,
            failure_kind="",
            **SPELL_ENDED,
        )
        if watermark is not None:
            integrations.filter(Q(watermark__isnull=True) | Q(watermark__lt=watermark)).update(
                watermark=watermark
            )
        onboarding_first_data_claim(clinic_id=clinic_id, now=now)
    else:
        integrations.update(
            last_error=error[:2000],
            failure_kind=kind or ProblemKind.OTHER,
            failing_since=Coalesce("failing_since", Value(now)),
        )
        integration_sync_failed(clinic_id=clinic_id, now=now)


# --- ezyVet ----------------------------------------------------------------------------------


class CredentialsError(ValueError):
    """The uploaded credentials cannot be read; the message says what is missing."""


class CachedTokenStore:
    """The clinic's ezyVet token in Django's cache (Redis, or files on one machine), shared
    by every worker and web process; keyed by the credentials, so new ones start afresh."""

    def __init__(self, integration: Integration) -> None:
        stamp = (
            integration.credentials_updated_at.timestamp()
            if integration.credentials_updated_at
            else 0
        )
        site = hashlib.sha256(integration.base_url.encode()).hexdigest()[:12]
        self.key = f"ezyvet-token:{integration.pk}:{site}:{stamp:.0f}"

    def get(self) -> tuple[str, float] | None:
        value = cache.get(self.key)
        if not isinstance(value, list | tuple) or len(value) != 2:
            return None
        return str(value[0]), float(value[1])

    def put(self, token: str, expires_at: float) -> None:
        cache.set(self.key, (token, expires_at), timeout=max(int(expires_at - time.time()), 1))

    def discard(self, token: str) -> None:
        stored = self.get()
        if stored is not None and stored[0] == token:
            cache.delete(self.key)


def ezyvet_client(integration: Integration, **options: Any) -> ezyvet.EzyVetClient:
    """A connector for the clinic's ezyVet site, with its stored credentials and time zone
    (``options`` tune its retries, e.g. for the writeback worker), keeping to the site's rate
    limits shared with every other process (``priority``: writebacks before pulls)."""
    if not integration.base_url:
        raise CredentialsError("The integration has no ezyVet address (base URL).")
    if not integration.has_credentials:
        raise CredentialsError("No ezyVet credentials are stored for this clinic yet.")
    credentials = ezyvet.credentials_from_mapping(integration.credentials())
    priority = options.pop("priority", PULL)
    if options.get("rate_per_minute", 1) and "limiter" not in options and "clock" not in options:
        options["limiter"] = shared_limiter(integration, credentials.site_uid, priority=priority)
    options.setdefault("on_call", call_counter(integration))
    return ezyvet.EzyVetClient(
        integration.base_url,
        credentials,
        timezone=integration.clinic.timezone,
        token_store=CachedTokenStore(integration),
        **options,
    )


@dataclass(frozen=True)
class CredentialsTrial:
    """What trying an uploaded credentials file found, and whether the file was kept."""

    check: ezyvet.ConnectionCheck
    kept: bool

    @property
    def ok(self) -> bool:
        return self.check.ok

    @property
    def error(self) -> str:
        return self.check.error

    @property
    def unreachable(self) -> bool:
        return self.check.unreachable

    @property
    def scopes(self) -> tuple[ezyvet.ScopeCheck, ...]:
        return self.check.scopes


def integration_connect_ezyvet(
    *,
    integration: Integration,
    text: str,
    keep_untried: bool = False,
    actor: Actor = None,
    request: HttpRequest | None = None,
) -> CredentialsTrial:
    """Try the credentials file ezyVet gave the clinic, and store it (encrypted) only if it works.

    Refused credentials never replace the stored ones. If ezyVet cannot be reached, nothing
    is known about the file: it is kept only when ``keep_untried`` says so (the clinic admin's
    explicit choice). The answer never contains the secret. Raises ``CredentialsError`` when
    the file cannot be read.
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
    check = _ezyvet_try(integration, values)
    kept = check.ok or (check.unreachable and keep_untried)
    if kept:
        integration_set_credentials(
            integration=integration, values=values, actor=actor, request=request
        )
    if check.ok:
        # The stored credentials work: a failure that new credentials fix is over.
        Integration.objects.filter(
            pk=integration.pk, failure_kind__in=[ProblemKind.CREDENTIALS, ProblemKind.SCOPES]
        ).update(failing_since=None, failure_kind="", last_error="")
        onboarding_steps_complete(
            integration=integration, trigger=StepTrigger.CONNECTION_OK, actor=actor
        )
    integration.refresh_from_db()
    audit_log(
        action="integration.connection_checked",
        actor=actor,
        request=request,
        obj=integration,
        clinic=integration.clinic,
        after={
            "ok": check.ok,
            "kept": kept,
            "unreachable": check.unreachable,
            "error": check.error,
            "missing_scopes": list(check.missing_scopes),
        },
    )
    return CredentialsTrial(check=check, kept=kept)


def _ezyvet_try(integration: Integration, values: dict[str, str]) -> ezyvet.ConnectionCheck:
    """Ask ezyVet for a token and one record per scope with ``values``, without storing them."""
    if not integration.base_url:
        return ezyvet.ConnectionCheck(
            ok=False, token_ok=False, error="The integration has no ezyVet address (base URL)."
        )
    client = ezyvet.EzyVetClient(
        integration.base_url,
        ezyvet.credentials_from_mapping(values),
        timezone=integration.clinic.timezone,
    )
    with client:
        return client.check_connection()
