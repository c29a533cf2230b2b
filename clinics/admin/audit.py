"""Every save and delete in the admin leaves an audit row; the audit trail itself is
read-only."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Model
from django.forms.models import model_to_dict
from django.http import HttpRequest

from clinics.audit import audit_log
from clinics.models import AuditEvent


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
