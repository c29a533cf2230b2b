"""Every save and delete in the admin leaves an audit row; the audit trail itself is
read-only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import transaction
from django.db.models import Model, QuerySet
from django.forms.models import BaseModelFormSet, model_to_dict
from django.http import HttpRequest

from clinics.admin.filters import ClinicFilter
from clinics.audit import audit_log
from clinics.models import AuditEvent


def formset_audited_save(*, request: HttpRequest, formset: BaseModelFormSet) -> None:
    """Save an admin inline formset, one audit row per object added, changed or deleted."""
    before = {
        # form.initial: the instance itself already holds the posted values.
        form.instance.pk: {f: form.initial.get(f) for f in form.changed_data}
        for form in formset.initial_forms
        if form.instance.pk is not None and form.has_changed()
    }
    deleted = [
        (obj, model_to_dict(obj)) for obj in (f.instance for f in formset.deleted_forms) if obj.pk
    ]
    formset.save()
    for obj in formset.new_objects:
        audit_log(
            action=f"admin.{obj._meta.model_name}.created",
            request=request,
            obj=obj,
            after=model_to_dict(obj),
        )
    for obj, fields in formset.changed_objects:
        audit_log(
            action=f"admin.{obj._meta.model_name}.changed",
            request=request,
            obj=obj,
            before=before.get(obj.pk),
            after={k: v for k, v in model_to_dict(obj).items() if k in fields},
        )
    for obj, values in deleted:
        audit_log(
            action=f"admin.{obj._meta.model_name}.deleted",
            request=request,
            before=values,
            after={"object": str(obj)[:200], "model": obj._meta.label_lower},
        )


class ClinicUserChoices:
    """A ``user`` foreign key in the admin offers only users the actor may manage: the
    onboarding team can never give itself (or its team) a membership or a vet's login."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):  # type: ignore[no-untyped-def]
        if db_field.name == "user":
            from clinics.users import clinic_users

            kwargs["queryset"] = clinic_users(request.user).exclude(pk=request.user.pk)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]


class AuditedDeletions:
    """A ModelAdmin mixin: each object deleted, one by one or by "Delete selected" (which
    deletes the queryset at once, never through ``delete_model``), leaves an AuditEvent with
    its values, in the deletion's transaction."""

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        deletions_audited(request=request, objects=[obj])
        super().delete_model(request, obj)  # type: ignore[misc]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        with transaction.atomic():
            deletions_audited(request=request, objects=list(queryset))
            super().delete_queryset(request, queryset)  # type: ignore[misc]


class AuditedAdmin(AuditedDeletions, admin.ModelAdmin):
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

    def save_formset(
        self, request: HttpRequest, form: forms.ModelForm, formset: BaseModelFormSet, change: bool
    ) -> None:
        formset_audited_save(request=request, formset=formset)


def deletions_audited(*, request: HttpRequest, objects: list[Model]) -> None:
    """One audit row per object the admin is about to delete, with its values."""
    for obj in objects:
        values = {
            # A many-to-many field (a group's permissions) reads as its objects: kept as text.
            k: [str(item) for item in v] if isinstance(v, list) else v
            for k, v in model_to_dict(obj).items()
        }
        audit_log(
            action=f"admin.{obj._meta.model_name}.deleted",
            request=request,
            obj=obj,
            before=values,
        )


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor_label", "clinic", "action", "object_repr", "ip_address"]
    list_filter = ["action", ClinicFilter]
    search_fields = ["actor_label", "action", "object_repr", "object_id"]
    date_hierarchy = "created_at"
    list_select_related = ["clinic"]
    # The legal record is kept for good: counting all of it on every page is not.
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False
