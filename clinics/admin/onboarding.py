"""Onboarding: each integration's checklist (steps, emails to the clinic), the paths the
checklists are made from, and the daily summaries."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Model, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from clinics import onboarding
from clinics.admin.audit import AuditedAdmin, AuditedDeletions
from clinics.admin.filters import RelationLookupsByKey
from clinics.admin.onboarding_progress import (
    onboarding_progress_link,
    onboarding_state_filter,
    with_onboarding_progress,
)
from clinics.display import when
from clinics.models import (
    Clinic,
    OnboardingChecklist,
    OnboardingEmail,
    OnboardingPath,
    OnboardingStep,
    OnboardingStepTemplate,
    OnboardingSummary,
)


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
        stamp = when(obj.due_at)
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
        stamp = when(obj.done_at)
        return f"{stamp} by {obj.done_by_label or 'someone'}"

    @admin.display(description="email")
    def email(self, obj: OnboardingStep) -> str:
        if not obj.template.email_template:
            return "—"
        url = reverse(
            "admin:clinics_onboardingchecklist_step_email", args=[obj.checklist_id, obj.pk]
        )
        sent = f"sent {when(obj.email_sent_at)}" if obj.email_sent_at else "not sent"
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
class OnboardingChecklistAdmin(RelationLookupsByKey, AuditedAdmin):
    list_display = ["clinic", "path", "progress", "receiving_data_since", "created_at"]
    list_filter = ["path"]
    search_fields = ["integration__clinic__name", "integration__clinic__slug"]
    list_select_related = ["integration__clinic", "path"]
    list_per_page = 50
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
        return with_onboarding_progress(super().get_queryset(request), "pk")

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
            onboarding.onboarding_step_update(
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
            email = onboarding.onboarding_email_render(step=step)
        except onboarding.OnboardingEmailError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(back)
        if request.method == "POST":
            sent = onboarding.onboarding_step_send_email(step=step, request=request)
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
class OnboardingSummaryAdmin(AuditedDeletions, admin.ModelAdmin):
    """The daily overdue-steps emails, as sent (read-only; a deletion is audit-logged)."""

    list_display = ["day", "sent_at", "overdue_steps", "recipients"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: OnboardingSummary | None = None
    ) -> bool:
        return False
