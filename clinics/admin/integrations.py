"""Integrations: connector, status, schedule, agent tokens and credentials. Credentials are
write-only: a form field takes new ones; nothing ever renders the stored values."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from clinics import services
from clinics.admin.audit import AuditedAdmin
from clinics.admin.filters import AttentionFilter, attention_first, with_attention
from clinics.admin.onboarding_progress import (
    onboarding_progress_link,
    onboarding_state_filter,
    with_onboarding_progress,
)
from clinics.display import when
from clinics.models import Connector, Integration


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
        "health",
        "onboarding",
        "credentials_stored",
        "agent_token",
        "last_successful_sync_at",
        "no_data",
    ]
    list_filter = [AttentionFilter, "connector", "status"]
    search_fields = ["clinic__name", "clinic__slug"]
    list_select_related = ["clinic", "checklist"]
    list_per_page = 50
    readonly_fields = [
        "onboarding_checklist",
        "credentials_stored",
        "agent_token",
        "agent_version",
        "agent_last_contact_at",
        "agent_data_at",
        "last_successful_sync_at",
        "last_error",
        "failing_since",
        "failure_kind",
        "failures",
        "failure_alerted_at",
        "next_pull_at",
    ]
    actions = ["issue_agent_token", "revoke_agent_token", "pause", "resume"]

    def get_list_filter(self, request: HttpRequest) -> Any:
        return [*self.list_filter, onboarding_state_filter("checklist__integration")]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Integration]:
        rows = with_onboarding_progress(super().get_queryset(request), "checklist__id")
        return with_attention(rows)

    def get_ordering(self, request: HttpRequest) -> list[Any]:
        return [attention_first(), "clinic__name", "pk"]

    @admin.display(description="state", ordering="status")
    def health(self, obj: Integration) -> str:
        attention = getattr(obj, "needs_attention", False)
        return obj.health_display + (" · needs attention" if attention else "")

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
        return f"stored, encrypted (updated {when(stamp)})" if stamp else "stored, encrypted"

    @admin.display(description="agent token")
    def agent_token(self, obj: Integration) -> str:
        if not obj.is_agent:
            return "not used (cloud PIMS)"
        if not obj.has_agent_token:
            return "none issued"
        return f"…{obj.agent_token_hint}, issued {when(obj.agent_token_issued_at)}"

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
            elif check.unreachable:
                self.message_user(
                    request,
                    f"Credentials file not stored: ezyVet could not be reached to try it "
                    f"({check.error}). The credentials in use stay.",
                    messages.ERROR,
                )
            else:
                self.message_user(
                    request,
                    f"Credentials file not stored: ezyVet refused it ({check.error}). "
                    "The credentials in use stay.",
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
