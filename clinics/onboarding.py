"""Onboarding checklists: steps, their due dates and emails, the "we are receiving your data"
confirmation after a clinic's first successful sync, and the onboarding team's daily summary.
Each operation owns its transaction and audit row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce, NullIf
from django.urls import reverse
from django.utils import timezone

from clinics.access import ONBOARDING_GROUP
from clinics.audit import SYSTEM_SYNC, audit_log
from clinics.models import (
    Integration,
    OnboardingChecklist,
    OnboardingEmail,
    OnboardingStep,
    OnboardingSummary,
    StepTrigger,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
    from django.http import HttpRequest

    Actor = AbstractBaseUser | AnonymousUser | None
from clinics.emails import render_email


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


def onboarding_first_data_claim(*, clinic_id: int, now: datetime) -> None:
    """The first successful sync claims the checklist (one conditional update: exactly one
    run wins, even when two finish at once) and sends the final confirmation after commit."""
    found = (
        OnboardingChecklist.objects.filter(integration__clinic_id=clinic_id)
        .values_list("pk", "receiving_data_since")
        .first()
    )
    if found is not None and found[1] is not None:
        return  # claimed long ago: every later sync of a live clinic ends here
    if found is None:
        integration = Integration.objects.filter(clinic_id=clinic_id).first()
        made = OnboardingChecklist.objects.ensure_for(integration) if integration else None
        if made is None:
            return
        found = (made.pk, None)
    claimed = OnboardingChecklist.objects.filter(
        pk=found[0], receiving_data_since__isnull=True
    ).update(receiving_data_since=now)
    if claimed:
        from clinics.tasks import onboarding_final_confirmation_task

        onboarding_final_confirmation_task.delay_on_commit(found[0])


# The onboarding team sends these by hand (no address, no template): the sweep leaves them.
NOT_SENT_NOTE = "Not sent automatically:"
# The task queued after the first sync normally sends within seconds; older than this, it was
# lost (the broker was down when it was queued) or its send failed (the mail server refused).
FINAL_CONFIRMATION_GRACE = timedelta(minutes=2)
# A confirmation more than a week late is no longer news: the checklist shows it unsent.
FINAL_CONFIRMATION_MAX_AGE = timedelta(days=7)
SWEEP_BATCH = 200


def onboarding_final_confirmations_unsent(now: datetime | None = None) -> list[int]:
    """Checklists whose first data arrived but whose "receiving your data" email never went,
    oldest first (at most ``SWEEP_BATCH``)."""
    now = now or timezone.now()
    steps = (
        OnboardingStep.objects.filter(
            template__completes_on=StepTrigger.FIRST_DATA,
            email_sent_at__isnull=True,
            done_at__isnull=True,  # ticked by hand: the team has dealt with it
            checklist__receiving_data_since__lte=now - FINAL_CONFIRMATION_GRACE,
            checklist__receiving_data_since__gte=now - FINAL_CONFIRMATION_MAX_AGE,
        )
        .exclude(notes__startswith=NOT_SENT_NOTE)
        .order_by("checklist__receiving_data_since", "checklist_id")
    )
    return list(steps.values_list("checklist_id", flat=True)[:SWEEP_BATCH])


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
            notes=f"{NOT_SENT_NOTE} {exc} Then send it from this checklist."
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
