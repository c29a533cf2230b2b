"""The onboarding team's panel: clinics, integrations, memberships, vets. Credentials are
write-only: a form field takes new ones; nothing ever renders the stored values."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, Model, OuterRef, Q, QuerySet
from django.forms.models import BaseInlineFormSet, model_to_dict
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from clinics import services
from clinics.audit import audit_log
from clinics.models import (
    AuditEvent,
    Clinic,
    Connector,
    Integration,
    Membership,
    OnboardingChecklist,
    OnboardingEmail,
    OnboardingPath,
    OnboardingStep,
    OnboardingStepTemplate,
    OnboardingSummary,
    Vet,
)


class AuditedAdmin(admin.ModelAdmin):
    """Every save and delete in the admin leaves an AuditEvent with what changed."""

    def save_model(
        self, request: HttpRequest, obj: Model, form: forms.ModelForm, change: bool
    ) -> None:
        fields = list(form.changed_data)
        before = (
            {
                k: v
                for k, v in model_to_dict(type(obj)._default_manager.get(pk=obj.pk)).items()
                if k in fields
            }
            if change
            else None
        )
        super().save_model(request, obj, form, change)
        audit_log(
            action=f"admin.{obj._meta.model_name}.{'changed' if change else 'created'}",
            request=request,
            obj=obj,
            before=before,
            after={k: v for k, v in model_to_dict(obj).items() if k in fields},
        )

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        audit_log(
            action=f"admin.{obj._meta.model_name}.deleted",
            request=request,
            obj=obj,
            before=model_to_dict(obj),
        )
        super().delete_model(request, obj)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class VetInline(admin.TabularInline):
    model = Vet
    extra = 0
    fields = ["first_name", "last_name", "licence_number", "pims_user_id", "user", "is_active"]
    autocomplete_fields = ["user"]


@admin.register(Clinic)
class ClinicAdmin(AuditedAdmin):
    list_display = [
        "name",
        "slug",
        "city",
        "state",
        "is_active",
        "home_delivery_enabled",
        "writeback_enabled",
        "integration_status",
        "last_sync",
    ]
    list_filter = [
        "is_active",
        "home_delivery_enabled",
        "writeback_enabled",
        "integration__connector",
        "integration__status",
    ]
    search_fields = ["name", "slug", "city", "postcode", "email", "phone"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline, VetInline]
    list_select_related = ["integration"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "timezone", "is_active"]}),
        (
            "Contact",
            {
                "fields": [
                    "address_line1",
                    "address_line2",
                    "city",
                    "state",
                    "postcode",
                    "country",
                    "phone",
                    "email",
                ]
            },
        ),
        ("Services", {"fields": ["home_delivery_enabled", "writeback_enabled"]}),
    ]

    @admin.display(description="integration")
    def integration_status(self, obj: Clinic) -> str:
        integration = getattr(obj, "integration", None)
        if integration is None:
            return "—"
        return f"{integration.get_connector_display()}: {integration.get_status_display()}"

    @admin.display(description="last sync")
    def last_sync(self, obj: Clinic) -> str:
        integration = getattr(obj, "integration", None)
        if integration is None or integration.last_successful_sync_at is None:
            return "never"
        return timezone.localtime(integration.last_successful_sync_at).strftime("%Y-%m-%d %H:%M")


class IntegrationForm(forms.ModelForm):
    new_credentials = forms.CharField(
        label="Replace credentials",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "autocomplete": "off"}),
        help_text="Write-only. One key=value per line (for ezyVet: partner_id, client_id, "
        "client_secret, site_uid, scope). Stored encrypted; never shown again. Leave empty "
        "to keep what is stored.",
    )

    credentials_file = forms.FileField(
        label="ezyVet credentials file",
        required=False,
        help_text="ezyVet only: the client_credentials.txt the clinic downloaded from ezyVet. "
        "VetSync reads it, stores it encrypted and tries a token at once.",
    )

    class Meta:
        model = Integration
        fields = [
            "clinic",
            "connector",
            "status",
            "base_url",
            "sync_interval",
            "expected_interval",
            "watermark",
        ]

    def clean_credentials_file(self) -> str | None:
        upload = self.cleaned_data.get("credentials_file")
        if not upload:
            return None
        if upload.size > 64 * 1024:
            raise forms.ValidationError("That file is too big to be an ezyVet credentials file.")
        try:
            return upload.read().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise forms.ValidationError(
                "The file is not text; upload the .txt ezyVet gave."
            ) from exc

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("credentials_file") and cleaned.get("connector") != Connector.EZYVET:
            self.add_error("credentials_file", "A credentials file is only for ezyVet.")
        return cleaned

    def clean_new_credentials(self) -> dict[str, str] | None:
        text = self.cleaned_data.get("new_credentials", "")
        if not text.strip():
            return None
        values: dict[str, str] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep:
                key, sep, value = line.partition(":")
            if not sep or not key.strip():
                raise forms.ValidationError(f"Line {number} is not key=value.")
            values[key.strip().lower()] = value.strip()
        return values


@admin.register(Integration)
class IntegrationAdmin(AuditedAdmin):
    form = IntegrationForm
    list_display = [
        "clinic",
        "connector",
        "status",
        "onboarding",
        "credentials_stored",
        "agent_token",
        "last_successful_sync_at",
        "no_data",
    ]
    list_filter = ["connector", "status"]
    search_fields = ["clinic__name", "clinic__slug"]
    list_select_related = ["clinic", "checklist"]
    readonly_fields = [
        "onboarding_checklist",
        "credentials_stored",
        "agent_token",
        "last_successful_sync_at",
        "last_error",
    ]
    actions = ["issue_agent_token", "revoke_agent_token", "pause", "resume"]

    def get_list_filter(self, request: HttpRequest) -> Any:
        return [*self.list_filter, onboarding_state_filter("checklist__integration")]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Integration]:
        return with_onboarding_progress(super().get_queryset(request), "checklist__steps")

    @admin.display(description="onboarding")
    def onboarding(self, obj: Integration) -> str:
        checklist = getattr(obj, "checklist", None)
        if checklist is None:
            return "—"
        return onboarding_progress_link(
            checklist,
            total=getattr(obj, "onboarding_total", 0),
            done=getattr(obj, "onboarding_done", 0),
            overdue=getattr(obj, "onboarding_overdue", 0),
        )

    @admin.display(description="onboarding checklist")
    def onboarding_checklist(self, obj: Integration) -> str:
        checklist = getattr(obj, "checklist", None) if obj.pk else None
        if checklist is None:
            return "Created with the integration, from its connector's onboarding path."
        steps = list(checklist.steps.all())
        return onboarding_progress_link(
            checklist,
            total=len(steps),
            done=sum(step.is_done for step in steps),
            overdue=sum(step.is_overdue() for step in steps),
            label=f"{checklist.path}: ",
        )

    def get_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        return [
            *IntegrationForm.Meta.fields,
            "credentials_file",
            "new_credentials",
            *self.readonly_fields,
        ]

    @admin.display(description="credentials")
    def credentials_stored(self, obj: Integration) -> str:
        if not obj.has_credentials:
            return "none stored"
        stamp = obj.credentials_updated_at
        return (
            f"stored, encrypted (updated {stamp:%Y-%m-%d %H:%M})" if stamp else "stored, encrypted"
        )

    @admin.display(description="agent token")
    def agent_token(self, obj: Integration) -> str:
        if not obj.is_agent:
            return "not used (cloud PIMS)"
        if not obj.has_agent_token:
            return "none issued"
        return f"…{obj.agent_token_hint}, issued {obj.agent_token_issued_at:%Y-%m-%d %H:%M}"

    @admin.display(description="no data since", boolean=True)
    def no_data(self, obj: Integration) -> bool:
        return obj.is_overdue()

    def save_model(
        self, request: HttpRequest, obj: Model, form: forms.ModelForm, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        assert isinstance(obj, Integration)
        new_credentials = form.cleaned_data.get("new_credentials")
        if new_credentials:
            services.integration_set_credentials(
                integration=obj, values=new_credentials, request=request
            )
        uploaded = form.cleaned_data.get("credentials_file")
        if uploaded:
            try:
                check = services.integration_connect_ezyvet(
                    integration=obj, text=uploaded, request=request
                )
            except services.CredentialsError as exc:
                self.message_user(request, f"Credentials file not stored: {exc}", messages.ERROR)
                return
            if check.ok:
                self.message_user(
                    request, "Credentials stored: ezyVet issued a token and every scope works."
                )
            else:
                self.message_user(
                    request,
                    f"Credentials stored, but ezyVet refused: {check.error}",
                    messages.ERROR,
                )

    @admin.action(description="Issue a new agent token (shown once)")
    def issue_agent_token(
        self, request: HttpRequest, queryset: QuerySet[Integration]
    ) -> HttpResponse | None:
        issued: list[dict[str, Any]] = []
        for integration in queryset.select_related("clinic"):
            if not integration.is_agent:
                self.message_user(
                    request,
                    f"{integration.clinic}: ezyVet uses API credentials, not an agent token.",
                    messages.WARNING,
                )
                continue
            token = services.integration_issue_agent_token(integration=integration, request=request)
            issued.append({"integration": integration, "token": token})
        if not issued:
            return None
        return TemplateResponse(
            request,
            "admin/clinics/agent_tokens_issued.html",
            {
                **self.admin_site.each_context(request),
                "issued": issued,
                "title": "Agent tokens issued",
            },
        )

    @admin.action(description="Revoke the agent token")
    def revoke_agent_token(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        for integration in queryset.select_related("clinic"):
            services.integration_revoke_agent_token(integration=integration, request=request)
        self.message_user(
            request, f"Revoked {queryset.count()} token(s); those agents now get 401."
        )

    @admin.action(description="Pause syncing")
    def pause(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        for integration in queryset.select_related("clinic"):
            services.integration_set_status(
                integration=integration, status=Integration.Status.PAUSED, request=request
            )
        self.message_user(request, f"Paused {queryset.count()} integration(s).")

    @admin.action(description="Resume syncing (mark live)")
    def resume(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        for integration in queryset.select_related("clinic"):
            services.integration_set_status(
                integration=integration, status=Integration.Status.LIVE, request=request
            )
        self.message_user(request, f"Resumed {queryset.count()} integration(s).")


# --- Onboarding checklists -------------------------------------------------------------------


def with_onboarding_progress(queryset: QuerySet[Any], steps: str) -> QuerySet[Any]:
    """Annotate step counts (total, done, overdue now) for the progress column."""
    now = timezone.now()
    return queryset.annotate(
        onboarding_total=Count(steps, distinct=True),
        onboarding_done=Count(
            steps, filter=Q(**{f"{steps}__done_at__isnull": False}), distinct=True
        ),
        onboarding_overdue=Count(
            steps,
            filter=Q(**{f"{steps}__done_at__isnull": True, f"{steps}__due_at__lt": now}),
            distinct=True,
        ),
    )


def onboarding_progress_text(*, total: int, done: int, overdue: int) -> str:
    if total and done == total:
        return f"{done}/{total} complete"
    return f"{done}/{total}" + (f", {overdue} overdue" if overdue else "")


def onboarding_progress_link(
    checklist: OnboardingChecklist, *, total: int, done: int, overdue: int, label: str = ""
) -> SafeString:
    url = reverse("admin:clinics_onboardingchecklist_change", args=[checklist.pk])
    text = label + onboarding_progress_text(total=total, done=done, overdue=overdue)
    if overdue:
        return format_html(
            '<a href="{}" data-testid="onboarding-progress" class="onboarding-overdue">'
            '<img src="{}" alt="Overdue"> {}</a>',
            url,
            static("admin/img/icon-alert.svg"),
            text,
        )
    return format_html('<a href="{}" data-testid="onboarding-progress">{}</a>', url, text)


def onboarding_state_filter(checklist_lookup: str) -> type[admin.SimpleListFilter]:
    """A list filter by onboarding state; ``checklist_lookup`` leads from a step to the row."""

    class OnboardingStateFilter(admin.SimpleListFilter):
        title = "onboarding"
        parameter_name = "onboarding"

        def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
            return [
                ("overdue", "Has an overdue step"),
                ("open", "In progress"),
                ("complete", "Complete"),
            ]

        def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
            steps = OnboardingStep.objects.filter(**{checklist_lookup: OuterRef("pk")})
            if self.value() == "overdue":
                return queryset.filter(Exists(steps.overdue()))
            if self.value() == "open":
                return queryset.filter(Exists(steps.filter(done_at__isnull=True)))
            if self.value() == "complete":
                return queryset.filter(Exists(steps)).exclude(
                    Exists(steps.filter(done_at__isnull=True))
                )
            return queryset

    return OnboardingStateFilter


class OnboardingStepForm(forms.ModelForm):
    done = forms.BooleanField(label="Done", required=False)

    class Meta:
        model = OnboardingStep
        fields = ["notes"]
        widgets = {"notes": forms.Textarea(attrs={"rows": 2, "cols": 36})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["done"].initial = self.instance.is_done

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        step = self.instance
        if (
            cleaned.get("done")
            and not step.is_done
            and step.template.requires_technical_contact
            and not step.checklist.has_technical_contact
        ):
            self.add_error(
                "done",
                "Record the technical contact (a name, and an email or phone) above first.",
            )
        return cleaned


class OnboardingStepFormSet(BaseInlineFormSet):
    def add_fields(self, form: forms.ModelForm, index: int | None) -> None:
        super().add_fields(form, index)
        # The checklist as posted (technical contact included), not as stored.
        form.instance.checklist = self.instance


class OnboardingStepInline(admin.TabularInline):
    model = OnboardingStep
    form = OnboardingStepForm
    formset = OnboardingStepFormSet
    extra = 0
    can_delete = False
    # Each row is headed by the step's number and title (the inline shows the object).
    fields = ["about", "who_acts", "due", "done", "done_info", "notes", "email"]
    readonly_fields = ["about", "who_acts", "due", "done_info", "email"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[OnboardingStep]:
        return super().get_queryset(request).select_related("template__depends_on")

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    @admin.display(description="about")
    def about(self, obj: OnboardingStep) -> str:
        rule = obj.template
        notes = []
        if rule.requires_technical_contact:
            notes.append("Needs the technical contact.")
        if rule.completes_on:
            notes.append(f"Ticks itself: {rule.get_completes_on_display().lower()}.")
        if rule.help_text:
            notes.append(rule.help_text)
        return " ".join(notes) or "—"

    @admin.display(description="who acts")
    def who_acts(self, obj: OnboardingStep) -> str:
        return obj.template.get_actor_display()

    @admin.display(description="due")
    def due(self, obj: OnboardingStep) -> str:
        rule = obj.template.due_rule_text
        if obj.due_at is None:
            return rule or "no deadline"
        stamp = timezone.localtime(obj.due_at).strftime("%Y-%m-%d %H:%M")
        if obj.is_overdue():
            return format_html(
                '<span data-testid="step-overdue"><img src="{}" alt=""> <strong>overdue</strong>'
                " since {}</span><br><small>{}</small>",
                static("admin/img/icon-alert.svg"),
                stamp,
                rule,
            )
        return format_html("{}<br><small>{}</small>", stamp, rule)

    @admin.display(description="done at / by")
    def done_info(self, obj: OnboardingStep) -> str:
        if obj.done_at is None:
            return "—"
        stamp = timezone.localtime(obj.done_at).strftime("%Y-%m-%d %H:%M")
        return f"{stamp} by {obj.done_by_label or 'someone'}"

    @admin.display(description="email")
    def email(self, obj: OnboardingStep) -> str:
        if not obj.template.email_template:
            return "—"
        url = reverse(
            "admin:clinics_onboardingchecklist_step_email", args=[obj.checklist_id, obj.pk]
        )
        sent = (
            f"sent {timezone.localtime(obj.email_sent_at):%Y-%m-%d %H:%M}"
            if obj.email_sent_at
            else "not sent"
        )
        label = "Preview and send again" if obj.email_sent_at else "Preview and send"
        return format_html('{}<br><a href="{}" class="button">{}</a>', sent, url, label)


class OnboardingEmailInline(admin.TabularInline):
    model = OnboardingEmail
    extra = 0
    can_delete = False
    fields = ["sent_at", "subject", "to", "sent_by_label", "template"]
    readonly_fields = ["sent_at", "subject", "to", "sent_by_label", "template"]
    verbose_name = "email sent"
    verbose_name_plural = "emails sent"

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(OnboardingChecklist)
class OnboardingChecklistAdmin(AuditedAdmin):
    list_display = ["clinic", "path", "progress", "receiving_data_since", "created_at"]
    list_filter = ["path"]
    search_fields = ["integration__clinic__name", "integration__clinic__slug"]
    list_select_related = ["integration__clinic", "path"]
    inlines = [OnboardingStepInline, OnboardingEmailInline]
    fieldsets = [
        (None, {"fields": ["integration_link", "path", "receiving_data_since"]}),
        (
            "Technical contact",
            {
                "fields": [
                    "technical_contact_name",
                    "technical_contact_email",
                    "technical_contact_phone",
                ],
                "description": "The person who works with the vendor to install the agent; "
                "no agent can connect or reconnect to the server without them.",
            },
        ),
    ]
    readonly_fields = ["integration_link", "path", "receiving_data_since"]

    def get_list_filter(self, request: HttpRequest) -> Any:
        return [onboarding_state_filter("checklist"), *self.list_filter]

    def get_queryset(self, request: HttpRequest) -> QuerySet[OnboardingChecklist]:
        return with_onboarding_progress(super().get_queryset(request), "steps")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # each integration gets its checklist when it is created

    def has_delete_permission(
        self, request: HttpRequest, obj: OnboardingChecklist | None = None
    ) -> bool:
        return False

    @admin.display(description="clinic", ordering="integration__clinic__name")
    def clinic(self, obj: OnboardingChecklist) -> Clinic:
        return obj.integration.clinic

    @admin.display(description="progress")
    def progress(self, obj: OnboardingChecklist) -> str:
        return onboarding_progress_link(
            obj,
            total=getattr(obj, "onboarding_total", 0),
            done=getattr(obj, "onboarding_done", 0),
            overdue=getattr(obj, "onboarding_overdue", 0),
        )

    @admin.display(description="integration")
    def integration_link(self, obj: OnboardingChecklist) -> str:
        url = reverse("admin:clinics_integration_change", args=[obj.integration_id])
        return format_html('<a href="{}">{}</a>', url, obj.integration)

    def save_formset(
        self, request: HttpRequest, form: forms.ModelForm, formset: Any, change: bool
    ) -> None:
        if formset.model is not OnboardingStep:
            super().save_formset(request, form, formset, change)
            return
        changed = []
        for step_form in formset.forms:
            if not step_form.has_changed():
                continue
            services.onboarding_step_update(
                step=step_form.instance,
                done=step_form.cleaned_data["done"],
                notes=step_form.cleaned_data["notes"],
                request=request,
            )
            changed.append((step_form.instance, step_form.changed_data))
        # What the admin's change message reads, as formset.save() would have set it.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], changed, []

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:checklist_id>/steps/<int:step_id>/email/",
                self.admin_site.admin_view(self.step_email_view),
                name="clinics_onboardingchecklist_step_email",
            ),
            *super().get_urls(),
        ]

    def step_email_view(
        self, request: HttpRequest, checklist_id: int, step_id: int
    ) -> HttpResponse:
        """Preview a step's email as the clinic will get it; POST sends it."""
        checklist = self.get_object(request, str(checklist_id))
        if checklist is None:
            raise Http404("No such checklist.")
        if not self.has_change_permission(request, checklist):
            raise PermissionDenied
        step = get_object_or_404(
            OnboardingStep.objects.select_related("template", "checklist__integration__clinic"),
            pk=step_id,
            checklist=checklist,
        )
        back = reverse("admin:clinics_onboardingchecklist_change", args=[checklist.pk])
        try:
            email = services.onboarding_email_render(step=step)
        except services.OnboardingEmailError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(back)
        if request.method == "POST":
            sent = services.onboarding_step_send_email(step=step, request=request)
            self.message_user(request, f"Sent “{sent.subject}” to {sent.to}.")
            return HttpResponseRedirect(back)
        return TemplateResponse(
            request,
            "admin/clinics/onboarding_email_preview.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": f"Send: {step.template.title}",
                "checklist": checklist,
                "step": step,
                "email": email,
                "back": back,
            },
        )


class OnboardingStepTemplateInline(admin.TabularInline):
    model = OnboardingStepTemplate
    fk_name = "path"
    extra = 0
    fields = [
        "position",
        "key",
        "title",
        "actor",
        "depends_on",
        "due_after",
        "requires_technical_contact",
        "email_template",
        "completes_on",
    ]


@admin.register(OnboardingPath)
class OnboardingPathAdmin(AuditedAdmin):
    """The checklist templates, loaded from the seeds by a migration; the team reads them."""

    list_display = ["name", "connector", "step_count"]
    inlines = [OnboardingStepTemplateInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[OnboardingPath]:
        return super().get_queryset(request).annotate(step_total=Count("steps"))

    @admin.display(description="steps")
    def step_count(self, obj: OnboardingPath) -> int:
        return getattr(obj, "step_total", 0)


@admin.register(OnboardingSummary)
class OnboardingSummaryAdmin(admin.ModelAdmin):
    list_display = ["day", "sent_at", "overdue_steps", "recipients"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: OnboardingSummary | None = None
    ) -> bool:
        return False


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    list_display = ["user", "clinic", "role", "created_at"]
    list_filter = ["role", "clinic"]
    search_fields = ["user__username", "user__email", "clinic__name"]
    autocomplete_fields = ["user", "clinic"]


@admin.register(Vet)
class VetAdmin(AuditedAdmin):
    list_display = ["__str__", "clinic", "licence_number", "pims_user_id", "user", "is_active"]
    list_filter = ["is_active", "clinic"]
    search_fields = ["first_name", "last_name", "licence_number", "pims_user_id"]
    autocomplete_fields = ["clinic", "user"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor_label", "clinic", "action", "object_repr", "ip_address"]
    list_filter = ["action", "clinic"]
    search_fields = ["actor_label", "action", "object_repr", "object_id"]
    date_hierarchy = "created_at"
    list_select_related = ["clinic"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False
