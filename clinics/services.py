"""Operations on clinics and their integrations. Each owns its transaction and audit row."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce, NullIf
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from clinics import credentials
from clinics.access import ONBOARDING_GROUP
from clinics.audit import SYSTEM_SYNC, audit_log
from clinics.ezyvet_limits import call_counter, shared_limiter
from clinics.models import (
    Integration,
    OnboardingChecklist,
    OnboardingEmail,
    OnboardingStep,
    OnboardingSummary,
    StepTrigger,
)
from clinics.problems import ProblemKind
from clinics.sync_health import integration_sync_failed, integration_sync_recovered
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
            last_successful_sync_at=now, last_error="", failing_since=None, failure_kind=""
        )
        integration_sync_recovered(clinic_id=clinic_id)
        if watermark is not None:
            integrations.filter(Q(watermark__isnull=True) | Q(watermark__lt=watermark)).update(
                watermark=watermark
            )
        _onboarding_claim_first_data(clinic_id=clinic_id, now=now)
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


# --- Onboarding checklists -------------------------------------------------------------------


class OnboardingEmailError(ValueError):
    """A step's email cannot be sent; the message says why (no template, no address)."""


@dataclass(frozen=True)
class RenderedEmail:
    template: str
    to: list[str]
    subject: str
    body: str


def _actor_label(actor: Actor, default: str) -> str:
    if actor is not None and actor.is_authenticated:
        return actor.get_username()
    return default


def render_email(template: str, context: dict[str, Any]) -> tuple[str, str]:
    """Render templates/emails/<template>.txt: a "Subject: …" line, a blank line, the body."""
    text = render_to_string(f"emails/{template}.txt", context).lstrip()
    first, _, body = text.partition("\n")
    if not first.startswith("Subject:"):
        raise ValueError(f"emails/{template}.txt must start with a Subject: line")
    return first.removeprefix("Subject:").strip(), body.strip() + "\n"


def _onboarding_due_dates_refresh(checklist: OnboardingChecklist) -> None:
    """Each step with a due rule is due a set time after the step it depends on is done."""
    steps = list(checklist.steps.select_related("template"))
    done_at = {step.template_id: step.done_at for step in steps}
    for step in steps:
        rule = step.template
        if rule.depends_on_id is None or rule.due_after is None:
            continue
        start = done_at.get(rule.depends_on_id)
        due = start + rule.due_after if start is not None else None
        if due != step.due_at:
            OnboardingStep.objects.filter(pk=step.pk).update(due_at=due)


def onboarding_step_update(
    *,
    step: OnboardingStep,
    done: bool,
    notes: str,
    actor: Actor = None,
    request: HttpRequest | None = None,
) -> OnboardingStep:
    """Tick or untick a step and keep its notes; steps that depend on it get their due time.

    Raises ``ValidationError`` when the step needs a technical contact the checklist lacks.
    """
    if actor is None and request is not None:
        actor = request.user
    with transaction.atomic():
        step = (
            OnboardingStep.objects.select_for_update(of=("self",))
            .select_related("template", "checklist__integration__clinic")
            .get(pk=step.pk)
        )
        checklist = step.checklist
        if (
            done
            and not step.is_done
            and step.template.requires_technical_contact
            and not checklist.has_technical_contact
        ):
            raise ValidationError(
                "Record the technical contact (a name, and an email or phone) first."
            )
        before = {"done_at": step.done_at, "notes": step.notes}
        if done and not step.is_done:
            step.done_at = timezone.now()
            step.done_by_id = actor.pk if actor is not None and actor.is_authenticated else None
            step.done_by_label = _actor_label(actor, "system")
        elif not done and step.is_done:
            step.done_at = None
            step.done_by = None
            step.done_by_label = ""
        step.notes = notes
        step.save(update_fields=["done_at", "done_by", "done_by_label", "notes"])
        _onboarding_due_dates_refresh(checklist)
        audit_log(
            action="onboarding.step_updated",
            actor=actor,
            request=request,
            obj=step,
            clinic=checklist.integration.clinic,
            before=before,
            after={"step": step.template.title, "done_at": step.done_at, "notes": step.notes},
        )
    return step


def onboarding_steps_complete(
    *, integration: Integration, trigger: StepTrigger, actor: Actor = None
) -> int:
    """Tick the steps that the event ``trigger`` completes (e.g. ezyVet credentials stored)."""
    label = _actor_label(actor, "system")
    with transaction.atomic():
        steps = list(
            OnboardingStep.objects.select_related("template", "checklist")
            .filter(
                checklist__integration=integration,
                template__completes_on=trigger,
                done_at__isnull=True,
            )
            .select_for_update(of=("self",))
        )
        for step in steps:
            step.done_at = timezone.now()
            step.done_by_id = actor.pk if actor is not None and actor.is_authenticated else None
            step.done_by_label = label
            step.save(update_fields=["done_at", "done_by", "done_by_label"])
            audit_log(
                action="onboarding.step_completed",
                actor=actor,
                actor_label=label,
                obj=step,
                clinic=integration.clinic,
                after={"step": step.template.title, "trigger": trigger.value},
            )
        if steps:
            _onboarding_due_dates_refresh(steps[0].checklist)
    return len(steps)


def onboarding_email_render(*, step: OnboardingStep) -> RenderedEmail:
    """The step's email as the clinic's primary contact would get it."""
    template = step.template.email_template
    if not template:
        raise OnboardingEmailError("This step sends no email.")
    checklist = step.checklist
    clinic = checklist.integration.clinic
    if not clinic.email:
        raise OnboardingEmailError(
            f"{clinic} has no primary contact email: add it on the clinic first."
        )
    subject, body = render_email(
        f"onboarding/{template}",
        {
            "clinic": clinic,
            "integration": checklist.integration,
            "checklist": checklist,
            "step": step,
            "team_email": settings.ONBOARDING_TEAM_EMAIL,
            "site_url": settings.SITE_URL,
        },
    )
    return RenderedEmail(template=template, to=[clinic.email], subject=subject, body=body)


def _onboarding_email_deliver(
    *, step: OnboardingStep, email: RenderedEmail, label: str
) -> OnboardingEmail:
    """Send, record on the checklist and tick the step; the caller owns the transaction."""
    now = timezone.now()
    EmailMessage(
        subject=email.subject,
        body=email.body,
        to=email.to,
        reply_to=[settings.ONBOARDING_TEAM_EMAIL],
    ).send()
    OnboardingStep.objects.filter(pk=step.pk).update(email_sent_at=now)
    return OnboardingEmail.objects.create(
        checklist=step.checklist,
        step=step,
        template=email.template,
        to=", ".join(email.to),
        subject=email.subject,
        body=email.body,
        sent_at=now,
        sent_by_label=label,
    )


def onboarding_step_send_email(
    *, step: OnboardingStep, actor: Actor = None, request: HttpRequest | None = None
) -> OnboardingEmail:
    """Send a step's email to the clinic's primary contact, record it, and tick the step.

    Sending again is allowed (each send is recorded). Raises ``OnboardingEmailError``.
    """
    email = onboarding_email_render(step=step)
    user = actor if actor is not None else getattr(request, "user", None)
    label = _actor_label(user, "system")
    with transaction.atomic():
        sent = _onboarding_email_deliver(step=step, email=email, label=label)
        # The step is the email (e.g. "queue confirmation sent"): sending it ticks it.
        OnboardingStep.objects.filter(pk=step.pk, done_at__isnull=True).update(
            done_at=sent.sent_at,
            done_by_id=user.pk if user is not None and user.is_authenticated else None,
            done_by_label=label,
        )
        _onboarding_due_dates_refresh(step.checklist)
        audit_log(
            action="onboarding.email_sent",
            actor=actor,
            request=request,
            obj=step.checklist.integration,
            after={"step": step.template.title, "to": sent.to, "subject": sent.subject},
        )
    step.refresh_from_db()
    return sent


def _onboarding_claim_first_data(*, clinic_id: int, now: datetime) -> None:
    """The first successful sync claims the checklist (one conditional update: exactly one
    run wins, even when two finish at once) and sends the final confirmation after commit."""
    checklist = OnboardingChecklist.objects.filter(integration__clinic_id=clinic_id).first()
    if checklist is None:
        integration = Integration.objects.filter(clinic_id=clinic_id).first()
        checklist = OnboardingChecklist.objects.ensure_for(integration) if integration else None
    if checklist is None:
        return
    claimed = OnboardingChecklist.objects.filter(
        pk=checklist.pk, receiving_data_since__isnull=True
    ).update(receiving_data_since=now)
    if claimed:
        from clinics.tasks import onboarding_final_confirmation_task

        onboarding_final_confirmation_task.delay_on_commit(checklist.pk)


def onboarding_final_confirmation_send(*, checklist_id: int) -> OnboardingEmail | None:
    """Email "we are receiving your data" once; the step's email stamp is the claim."""
    step = (
        OnboardingStep.objects.select_related("template", "checklist__integration__clinic")
        .filter(checklist_id=checklist_id, template__completes_on=StepTrigger.FIRST_DATA)
        .first()
    )
    if step is None or step.email_sent_at is not None:
        return None
    clinic = step.checklist.integration.clinic
    try:
        email = onboarding_email_render(step=step)
    except OnboardingEmailError as exc:
        OnboardingStep.objects.filter(pk=step.pk, email_sent_at__isnull=True).update(
            notes=f"Not sent automatically: {exc} Then send it from this checklist."
        )
        audit_log(
            action="onboarding.final_email_not_sent",
            actor_label=SYSTEM_SYNC,
            obj=step,
            clinic=clinic,
            after={"reason": str(exc)},
        )
        return None
    now = timezone.now()
    with transaction.atomic():
        claimed = OnboardingStep.objects.filter(pk=step.pk, email_sent_at__isnull=True).update(
            email_sent_at=now,
            done_at=Coalesce(F("done_at"), Value(now)),
            done_by_label=Coalesce(NullIf(F("done_by_label"), Value("")), Value(SYSTEM_SYNC)),
        )
        if not claimed:
            return None
        # Sent inside the claim's transaction: a failed send releases the claim for a retry.
        sent = _onboarding_email_deliver(step=step, email=email, label=SYSTEM_SYNC)
        audit_log(
            action="onboarding.email_sent",
            actor_label=SYSTEM_SYNC,
            obj=step.checklist.integration,
            clinic=clinic,
            after={"step": step.template.title, "to": sent.to, "subject": sent.subject},
        )
    return sent


def _hours_text(value: timedelta) -> str:
    hours = int(value.total_seconds() // 3600)
    if hours < 1:
        return "under an hour"
    days, hours = divmod(hours, 24)
    return " ".join(
        part for part in (f"{days} d" if days else "", f"{hours} h" if hours else "") if part
    )


def onboarding_team_recipients() -> list[str]:
    """Active onboarding-team users with an email address."""
    users = (
        get_user_model()
        .objects.filter(is_active=True, groups__name=ONBOARDING_GROUP)
        .exclude(email="")
    )
    return sorted(set(users.values_list("email", flat=True)))


def onboarding_overdue_summary_send(*, day: date, now: datetime | None = None) -> int:
    """Email the team the steps overdue now, once per day; returns how many were listed."""
    now = now or timezone.now()
    steps = list(
        OnboardingStep.objects.overdue(now)
        .select_related("template", "checklist__path", "checklist__integration__clinic")
        .order_by("due_at")
    )
    recipients = onboarding_team_recipients()
    if not steps or not recipients:
        return 0
    rows = [
        {
            "step": step,
            "clinic": step.checklist.integration.clinic,
            "path": step.checklist.path,
            "overdue_for": _hours_text(now - step.due_at) if step.due_at else "",
            "url": settings.SITE_URL.rstrip("/")
            + reverse("admin:clinics_onboardingchecklist_change", args=[step.checklist_id]),
        }
        for step in steps
    ]
    subject, body = render_email(
        "onboarding/overdue_summary", {"rows": rows, "day": day, "now": now}
    )
    try:
        with transaction.atomic():
            OnboardingSummary.objects.create(
                day=day, sent_at=now, overdue_steps=len(rows), recipients=", ".join(recipients)
            )
            EmailMessage(subject=subject, body=body, to=recipients).send()
    except IntegrityError:
        return 0  # today's summary already went out
    return len(rows)
