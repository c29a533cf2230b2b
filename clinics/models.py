"""Tenants: clinics, their PIMS integration, staff membership and roles, vets, and the audit log."""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from clinics import credentials
from clinics.problems import Problem, problem_for

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"“{value}” is not a known time zone (e.g. America/Chicago).")


class ClinicQuerySet(models.QuerySet["Clinic"]):
    def for_user(self, user: AbstractBaseUser | AnonymousUser) -> ClinicQuerySet:
        if not user.is_authenticated:
            return self.none()
        return self.filter(memberships__user=user).distinct()


class Clinic(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(
        max_length=60, unique=True, help_text="Used in the clinic's addresses: /c/<slug>/."
    )
    timezone = models.CharField(
        max_length=64,
        default="America/Chicago",
        validators=[validate_timezone],
        help_text="The clinic's local time zone, for dates shown to staff and sent to the PIMS.",
    )
    address_line1 = models.CharField("address line 1", max_length=200, blank=True)
    address_line2 = models.CharField("address line 2", max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=50, blank=True)
    postcode = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=2, default="US")
    phone = models.CharField(max_length=40, blank=True)
    email = models.EmailField(
        blank=True, help_text="Primary contact's address, for onboarding and alert emails."
    )
    is_active = models.BooleanField("active", default=True)
    home_delivery_enabled = models.BooleanField(
        "home delivery",
        default=True,
        help_text="Home delivery may be used before the PIMS integration is complete.",
    )
    writeback_enabled = models.BooleanField(
        "WriteBack",
        default=False,
        help_text="Write eligible orders back into the clinic's PIMS.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ClinicQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("clinic-dashboard", kwargs={"clinic_slug": self.slug})

    @property
    def region(self) -> str:
        """The country its records' phone numbers are read in: its own, or the US if unset."""
        return self.country or "US"

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The clinic's time zone: its dates (sent to the PIMS, offered, shown) are read in it."""
        try:
            return zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return zoneinfo.ZoneInfo(settings.TIME_ZONE)

    def localtime(self, at: datetime | None = None) -> datetime:
        return timezone.localtime(at or timezone.now(), self.zone)

    def localdate(self, at: datetime | None = None) -> date:
        """Today (or ``at``'s date) at the clinic, whatever the server's zone."""
        return self.localtime(at).date()

    def local_noon(self, day: date) -> datetime:
        """A date-only value as an instant: noon at the clinic, the same day in any zone
        within 12 hours of it (ezyVet shows epochs in the site's zone)."""
        return datetime.combine(day, time(12, 0), tzinfo=self.zone)


class Connector(models.TextChoices):
    EZYVET = "ezyvet", "ezyVet (cloud API)"
    SYNCVET = "syncvet", "SyncVet agent"
    VETDATA = "vetdata", "VetData agent"
    DATAPOINT = "datapoint", "IDEXX DataPoint (Cornerstone)"
    VETSUCCESS = "vetsuccess", "SyncVet through VetSuccess"


AGENT_CONNECTORS = frozenset(
    {Connector.SYNCVET, Connector.VETDATA, Connector.DATAPOINT, Connector.VETSUCCESS}
)


def integration_attention(*, now: datetime, via: str = "") -> models.Case:
    """True for an integration that needs the onboarding team: failing (and not paused), or
    live with no data within its expected interval. ``via`` leads to it ("integration__")."""
    failing = Q(**{f"{via}failing_since__isnull": False}) & ~Q(**{f"{via}status": "paused"})
    overdue = Q(**{f"{via}status": "live"}) & (
        Q(**{f"{via}last_successful_sync_at__isnull": True})
        | Q(**{f"{via}last_successful_sync_at__lt": now - models.F(f"{via}expected_interval")})
    )
    return models.Case(
        models.When(failing | overdue, then=models.Value(True)),
        default=models.Value(False),
        output_field=models.BooleanField(),
    )


class IntegrationQuerySet(models.QuerySet["Integration"]):
    def overdue(self, now: datetime | None = None) -> IntegrationQuerySet:
        """Live integrations whose last successful sync is older than their expected interval."""
        now = now or timezone.now()
        return self.filter(status=Integration.Status.LIVE).filter(
            Q(last_successful_sync_at__isnull=True)
            | Q(last_successful_sync_at__lt=now - models.F("expected_interval"))
        )


class Integration(models.Model):
    class Status(models.TextChoices):
        ONBOARDING = "onboarding", "Onboarding"
        LIVE = "live", "Live"
        PAUSED = "paused", "Paused"
        FAILING = "failing", "Failing"

    clinic = models.OneToOneField(Clinic, on_delete=models.CASCADE, related_name="integration")
    connector = models.CharField(max_length=20, choices=Connector.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ONBOARDING)
    base_url = models.URLField(
        blank=True,
        help_text="ezyVet only: the API's base address (the demo points it at the emulator).",
    )
    credentials_ciphertext = models.TextField(blank=True, editable=False)
    credentials_updated_at = models.DateTimeField(null=True, blank=True, editable=False)
    agent_token_hash = models.CharField(max_length=64, blank=True, editable=False, db_index=True)
    agent_token_hint = models.CharField(
        max_length=12, blank=True, editable=False, help_text="The token's last characters."
    )
    agent_token_issued_at = models.DateTimeField(null=True, blank=True, editable=False)
    # What the clinic's agent last said about itself (see clinics/agents.py).
    agent_version = models.CharField(
        max_length=200, blank=True, editable=False, help_text="The agent's User-Agent."
    )
    agent_last_contact_at = models.DateTimeField(null=True, blank=True, editable=False)
    agent_data_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the agent read the newest data it sent (its latest batch's sent_at).",
    )
    sync_interval = models.DurationField(
        default=timedelta(hours=1),
        help_text="How often VetSync pulls from a cloud PIMS (ezyVet).",
    )
    expected_interval = models.DurationField(
        default=timedelta(hours=3),
        help_text="How long without data before the clinic is flagged as “no data since …”.",
    )
    last_successful_sync_at = models.DateTimeField(null=True, blank=True)
    watermark = models.DateTimeField(
        null=True,
        blank=True,
        help_text="ezyVet only: pulls ask for changes after this time (empty: a first, full "
        "copy). Moves forward only after a pull's run has committed.",
    )
    last_pull_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(
        blank=True, help_text="The technical detail, for the onboarding team."
    )
    failing_since = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When syncs started failing (cleared by the next successful one).",
    )
    failure_kind = models.CharField(
        max_length=20,
        blank=True,
        editable=False,
        help_text="What kind of problem it is (clinic pages say it in plain words).",
    )
    failures = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text="Syncs failed in a row (0 again after a success); pulls back off with it.",
    )
    failure_alerted_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the clinic and the onboarding team were told of this failing spell.",
    )
    next_pull_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="ezyVet only: when the schedule pulls next (the clinic's slot in its "
        "interval, or later while a failing site backs off; empty: at once).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = IntegrationQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(sync_interval__gte=timedelta(minutes=5)),
                name="integration_sync_interval_min_5_minutes",
            ),
        ]
        indexes = [
            # The dispatcher's question every minute: which live ezyVet pulls are due.
            models.Index(
                fields=["connector", "status", "next_pull_at"], name="integration_due_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.clinic} — {self.get_connector_display()}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Here rather than in one service: integrations come into being from the admin, the
        # demo seed, factories and scripts, and each must start with its onboarding checklist
        # (or a fresh one when its connector changes). Saves of other fields skip the lookup.
        update_fields = kwargs.get("update_fields")
        super().save(*args, **kwargs)
        if update_fields is None or "connector" in update_fields:
            OnboardingChecklist.objects.ensure_for(self)

    @property
    def is_agent(self) -> bool:
        return self.connector in AGENT_CONNECTORS

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials_ciphertext)

    @property
    def has_agent_token(self) -> bool:
        return bool(self.agent_token_hash)

    def credentials(self) -> dict[str, str]:
        """The decrypted credentials, for connector code only; never render them."""
        return credentials.unseal(self.credentials_ciphertext)

    @property
    def is_failing(self) -> bool:
        return self.failing_since is not None and self.status != self.Status.PAUSED

    @property
    def health(self) -> str:
        """The status staff see: a live (or onboarding) integration whose syncs fail is failing."""
        return self.Status.FAILING if self.is_failing else self.status

    @property
    def health_display(self) -> str:
        return str(self.Status(self.health).label)

    @property
    def problem(self) -> Problem | None:
        """What is wrong, in plain words, while syncs fail (``clinics.problems``)."""
        return problem_for(self.failure_kind) if self.is_failing else None

    @property
    def sync_interval_text(self) -> str:
        return _duration_text(self.sync_interval)

    @property
    def expected_interval_text(self) -> str:
        return _duration_text(self.expected_interval)

    def is_overdue(self, now: datetime | None = None) -> bool:
        if self.status != self.Status.LIVE:
            return False
        if self.last_successful_sync_at is None:
            return True
        return self.last_successful_sync_at < (now or timezone.now()) - self.expected_interval


def _duration_text(value: timedelta) -> str:
    """ "1 hour", "90 minutes", "2 days": how staff read an interval."""
    minutes = int(value.total_seconds() // 60)
    if minutes % (24 * 60) == 0:
        days = minutes // (24 * 60)
        return f"{days} day{'s' if days != 1 else ''}"
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class Role(models.TextChoices):
    STAFF = "staff", "Staff"
    VET = "vet", "Veterinarian"
    ADMIN = "admin", "Clinic admin"


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.STAFF)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "clinic"], name="membership_unique_user_clinic")
        ]
        ordering = ["clinic__name"]

    def __str__(self) -> str:
        return f"{self.user} @ {self.clinic} ({self.get_role_display()})"

    @property
    def can_approve(self) -> bool:
        """Only a vet approves or declines prescriptions and Rx requests."""
        return self.role == Role.VET

    @property
    def is_clinic_admin(self) -> bool:
        return self.role == Role.ADMIN


class Vet(models.Model):
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="vets")
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    licence_number = models.CharField(max_length=50, blank=True)
    pims_user_id = models.CharField(
        "PIMS user id",
        max_length=50,
        blank=True,
        help_text="The vet's own user id in the PIMS, sent as the prescriber. Never a shared "
        "integration user.",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="vet_profiles",
        help_text="The vet's VetSync login, if they have one.",
    )
    is_active = models.BooleanField("active", default=True)

    class Meta:
        ordering = ["last_name", "first_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "pims_user_id"],
                condition=~Q(pims_user_id=""),
                name="vet_unique_pims_user_per_clinic",
            ),
            models.UniqueConstraint(
                fields=["clinic", "user"],
                condition=Q(user__isnull=False),
                name="vet_unique_login_per_clinic",
            ),
        ]

    def __str__(self) -> str:
        return f"Dr {self.first_name} {self.last_name}"


class AuditEvent(models.Model):
    """One row per human or system action: who, where, what, before/after, from which address.

    It lives in the lowest app layer so that every app (clinics included) can write it.
    """

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_events",
    )
    actor_label = models.CharField(
        max_length=150, help_text="The user's name at the time, or the system part that acted."
    )
    clinic = models.ForeignKey(
        Clinic, on_delete=models.SET_NULL, null=True, blank=True, related_name="audit_events"
    )
    action = models.CharField(max_length=80, db_index=True)
    object_type = models.CharField(max_length=80, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["object_type", "object_id", "created_at"]),
            models.Index(fields=["clinic", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label}: {self.action}"


# --- Onboarding checklists ---------------------------------------------------------------
#
# Each onboarding path (one per connector) is data: an ordered list of step templates loaded
# by a data migration from the seeds (clinics/onboarding_paths.py). Every integration gets a
# checklist of that path's steps; the onboarding team ticks them in /admin/. Nothing is gated
# on a checklist: a clinic uses home delivery before its integration is complete.


class StepActor(models.TextChoices):
    CLINIC = "clinic", "Clinic"
    ONBOARDING = "onboarding", "VetSync onboarding team"
    SYNCVET = "syncvet", "SyncVet"
    VETDATA = "vetdata", "VetData"
    IDEXX = "idexx", "IDEXX DataPoint"
    VETSUCCESS = "vetsuccess", "VetSuccess"
    VETSYNC = "vetsync", "VetSync (automatic)"


class StepTrigger(models.TextChoices):
    """What ticks a step by itself, besides the onboarding team."""

    MANUAL = "", "Ticked by hand"
    CREDENTIALS_STORED = "credentials_stored", "PIMS credentials stored"
    CONNECTION_OK = "connection_ok", "Connection check succeeded"
    FIRST_DATA = "first_data", "First successful sync"


class OnboardingPath(models.Model):
    """The checklist template for one way of connecting a PIMS."""

    connector = models.CharField(max_length=20, choices=Connector.choices, unique=True)
    name = models.CharField(max_length=120)
    summary = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class OnboardingStepTemplate(models.Model):
    path = models.ForeignKey(OnboardingPath, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    key = models.SlugField(max_length=60, help_text="Stable name, unique within the path.")
    title = models.CharField(max_length=200)
    actor = models.CharField("who acts", max_length=20, choices=StepActor.choices)
    help_text = models.TextField(blank=True)
    depends_on = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="dependents",
        help_text="The step whose completion starts this step's clock.",
    )
    due_after = models.DurationField(
        null=True, blank=True, help_text="Due this long after the step it depends on is done."
    )
    requires_technical_contact = models.BooleanField(
        default=False,
        help_text="Cannot be ticked until the checklist names a technical contact.",
    )
    email_template = models.CharField(
        max_length=80,
        blank=True,
        help_text="templates/emails/onboarding/<name>.txt, sent to the clinic's primary "
        "contact from the admin (or automatically, for the final confirmation).",
    )
    completes_on = models.CharField(
        max_length=30, choices=StepTrigger.choices, default=StepTrigger.MANUAL, blank=True
    )

    class Meta:
        ordering = ["path", "position"]
        constraints = [
            models.UniqueConstraint(fields=["path", "position"], name="step_template_position"),
            models.UniqueConstraint(fields=["path", "key"], name="step_template_key"),
            models.CheckConstraint(
                condition=Q(depends_on__isnull=True, due_after__isnull=True)
                | Q(depends_on__isnull=False, due_after__isnull=False),
                name="step_template_due_rule_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.title}"

    @property
    def due_rule_text(self) -> str:
        if self.depends_on is None or self.due_after is None:
            return ""
        hours = int(self.due_after.total_seconds() // 3600)
        return f"within {hours} h of step {self.depends_on.position}"


class OnboardingChecklistQuerySet(models.QuerySet["OnboardingChecklist"]):
    def create_for(self, integration: Integration) -> OnboardingChecklist | None:
        """A checklist for the integration's path with one row per step (None: no such path)."""
        path = OnboardingPath.objects.filter(connector=integration.connector).first()
        if path is None:
            return None
        checklist = self.create(integration=integration, path=path)
        OnboardingStep.objects.bulk_create(
            OnboardingStep(checklist=checklist, template=template) for template in path.steps.all()
        )
        return checklist

    def ensure_for(self, integration: Integration) -> OnboardingChecklist | None:
        """The integration's checklist; a new one if it has none or its connector changed."""
        checklist = self.filter(integration=integration).select_related("path").first()
        if checklist is not None and checklist.path.connector == integration.connector:
            return checklist
        if checklist is not None:
            # Steps of another path do not carry over to the new one.
            checklist.delete()
        return self.create_for(integration)


class OnboardingChecklist(models.Model):
    integration = models.OneToOneField(
        Integration, on_delete=models.CASCADE, related_name="checklist"
    )
    path = models.ForeignKey(OnboardingPath, on_delete=models.PROTECT, related_name="checklists")
    technical_contact_name = models.CharField(max_length=150, blank=True)
    technical_contact_email = models.EmailField(blank=True)
    technical_contact_phone = models.CharField(max_length=40, blank=True)
    receiving_data_since = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="The first successful sync; claimed once, it sends the final confirmation.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OnboardingChecklistQuerySet.as_manager()

    class Meta:
        ordering = ["integration__clinic__name"]

    def __str__(self) -> str:
        return f"{self.integration.clinic}: {self.path}"

    @property
    def has_technical_contact(self) -> bool:
        return bool(
            self.technical_contact_name.strip()
            and (self.technical_contact_email.strip() or self.technical_contact_phone.strip())
        )


class OnboardingStepQuerySet(models.QuerySet["OnboardingStep"]):
    def overdue(self, now: datetime | None = None) -> OnboardingStepQuerySet:
        return self.filter(done_at__isnull=True, due_at__lt=now or timezone.now())


class OnboardingStep(models.Model):
    checklist = models.ForeignKey(
        OnboardingChecklist, on_delete=models.CASCADE, related_name="steps"
    )
    template = models.ForeignKey(
        OnboardingStepTemplate, on_delete=models.PROTECT, related_name="instances"
    )
    due_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when the step this one depends on is done."
    )
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    done_by_label = models.CharField(max_length=150, blank=True)
    notes = models.TextField(blank=True)
    email_sent_at = models.DateTimeField(null=True, blank=True)

    objects = OnboardingStepQuerySet.as_manager()

    class Meta:
        ordering = ["checklist", "template__position"]
        constraints = [
            models.UniqueConstraint(
                fields=["checklist", "template"], name="step_once_per_checklist"
            )
        ]
        indexes = [models.Index(fields=["done_at", "due_at"])]

    def __str__(self) -> str:
        return str(self.template)

    @property
    def is_done(self) -> bool:
        return self.done_at is not None

    def is_overdue(self, now: datetime | None = None) -> bool:
        return (
            self.done_at is None
            and self.due_at is not None
            and self.due_at < (now or timezone.now())
        )


class OnboardingEmail(models.Model):
    """Every onboarding email sent, as sent: the checklist's record of what the clinic got."""

    checklist = models.ForeignKey(
        OnboardingChecklist, on_delete=models.CASCADE, related_name="emails"
    )
    step = models.ForeignKey(
        OnboardingStep, on_delete=models.SET_NULL, null=True, blank=True, related_name="emails"
    )
    template = models.CharField(max_length=80)
    to = models.CharField(max_length=500)
    subject = models.CharField(max_length=300)
    body = models.TextField()
    sent_at = models.DateTimeField(default=timezone.now)
    sent_by_label = models.CharField("sent by", max_length=150)

    class Meta:
        ordering = ["-sent_at", "-id"]

    def __str__(self) -> str:
        return f"{self.sent_at:%Y-%m-%d %H:%M} {self.subject}"


class OnboardingSummary(models.Model):
    """One row per daily overdue summary: the unique day makes a second run a no-op."""

    day = models.DateField(unique=True)
    sent_at = models.DateTimeField(default=timezone.now)
    overdue_steps = models.PositiveIntegerField()
    recipients = models.TextField()

    class Meta:
        ordering = ["-day"]
        verbose_name_plural = "onboarding summaries"

    def __str__(self) -> str:
        return f"{self.day}: {self.overdue_steps} overdue"
