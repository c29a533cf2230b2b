"""Users in the admin. The onboarding team invites, changes and deactivates clinic users;
only a superuser grants staff, superuser, groups or permissions, sets passwords, changes
emails, resets two-factor, or manages the teams that work across clinics."""

from __future__ import annotations

from typing import Any

from axes.admin import AccessAttemptAdmin, AccessFailureLogAdmin, AccessLogAdmin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import ActionLocation
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinics.admin.audit import AuditedDeletions
from clinics.admin.filters import RelationLookupsByKey
from clinics.audit import audit_log
from clinics.models import Clinic, Membership, Role
from clinics.two_factor.services import TwoFactorError, has_two_factor, two_factor_reset
from clinics.users import (
    clinic_users,
    invitation_send,
    user_before,
    user_invite,
    user_record_change,
    users_deactivate,
)

User = get_user_model()

# Devices change only through the two-factor services (audited), never by editing rows.
for _model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
if admin.site.is_registered(User):
    admin.site.unregister(User)
for login_model in (AccessAttempt, AccessLog, AccessFailureLog):
    if admin.site.is_registered(login_model):
        admin.site.unregister(login_model)
if admin.site.is_registered(Group):
    admin.site.unregister(Group)


class InviteForm(forms.ModelForm):
    clinic = forms.ModelChoiceField(queryset=Clinic.objects.order_by("name"))
    role = forms.ChoiceField(choices=Role.choices, initial=Role.STAFF)

    class Meta:
        model = User
        fields = ["email", "first_name", "last_name"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].required = True
        self.fields["email"].help_text = "Their login, and where the invitation goes."

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        taken = User.objects.filter(username__iexact=email) | User.objects.filter(
            email__iexact=email
        )
        if taken.exists():
            raise forms.ValidationError(
                "A user with this email exists already: add a membership to them instead."
            )
        return email


class LimitedUserForm(forms.ModelForm):
    """What the onboarding team may change on an existing clinic user."""

    class Meta:
        model = User
        fields = ["username", "first_name", "last_name", "is_active"]


class MembershipOfUserInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["clinic"]


@admin.register(User)
class VetSyncUserAdmin(RelationLookupsByKey, AuditedDeletions, UserAdmin):
    list_display = ["username", "email", "first_name", "last_name", "is_active", "is_staff"]
    inlines = [MembershipOfUserInline]
    actions = ["deactivate", "resend_invitation", "reset_two_factor"]
    readonly_fields = ["last_login", "date_joined", "two_factor"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return clinic_users(request.user).filter(pk__in=super().get_queryset(request).values("pk"))

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if request.user.is_superuser:
            fieldsets = super().get_fieldsets(request, obj)
            return [*fieldsets, ("Two-factor", {"fields": ["two_factor"]})] if obj else fieldsets
        if obj is None:
            return [(None, {"fields": ["email", "first_name", "last_name", "clinic", "role"]})]
        return [
            (None, {"fields": ["username", "email", "first_name", "last_name", "is_active"]}),
            ("Security", {"fields": ["two_factor", "last_login", "date_joined"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if request.user.is_superuser or obj is None:
            return self.readonly_fields
        return [*self.readonly_fields, "email"]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if not request.user.is_superuser:
            kwargs["form"] = InviteForm if obj is None else LimitedUserForm
            kwargs["fields"] = None
        return super().get_form(request, obj, change=change, **kwargs)

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        return self.inlines if obj is not None else []

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> Any:
        if not request.user.is_superuser:
            raise PermissionDenied
        return super().user_change_password(request, id, form_url)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Users are deactivated, never deleted (their audit trail points at them).
        return bool(request.user.is_superuser) and super().has_delete_permission(request, obj)

    @admin.display(description="two-factor")
    def two_factor(self, obj: Any) -> str:
        return "on" if has_two_factor(obj) else "off"

    def save_model(
        self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool
    ) -> None:
        if isinstance(form, InviteForm):
            user_invite(
                user=obj,
                clinic=form.cleaned_data["clinic"],
                role=form.cleaned_data["role"],
                actor=request.user,
                request=request,
            )
            return
        obj._vetsync_before = user_before(obj) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if not isinstance(form, InviteForm):
            user_record_change(
                user=form.instance,
                before=getattr(form.instance, "_vetsync_before", None),
                actor=request.user,
                request=request,
            )

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        from clinics.admin.audit import formset_audited_save

        formset_audited_save(request=request, formset=formset)

    @admin.action(description="Deactivate selected users")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        done = users_deactivate(users=list(queryset), actor=request.user, request=request)
        self.message_user(request, f"{done} user(s) deactivated.")

    @admin.action(description="Send the set-password invitation again")
    def resend_invitation(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        sent = 0
        for user in queryset:
            if user.has_usable_password() or not user.email:
                continue
            invitation_send(user=user, request=request, actor=request.user)
            sent += 1
        self.message_user(
            request, f"{sent} invitation(s) sent (users who set a password were skipped)."
        )

    @admin.action(description="Reset two-factor (superusers only)")
    def reset_two_factor(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        try:
            for user in queryset:
                two_factor_reset(user=user, actor=request.user, request=request)
        except TwoFactorError as exc:
            self.message_user(request, str(exc), level=messages.ERROR)
            return
        self.message_user(request, "Two-factor reset: they set it up again at their next login.")

    def get_actions(
        self, request: HttpRequest, action_location: Any = ActionLocation.CHANGE_LIST
    ) -> Any:
        actions = super().get_actions(request, action_location)
        if not request.user.is_superuser:
            actions.pop("reset_two_factor", None)
            actions.pop("delete_selected", None)
        return actions


@admin.register(AccessLog)
class AuditedAccessLogAdmin(AuditedDeletions, AccessLogAdmin):
    """Logins and logouts (django-axes): removing one is on the audit trail."""


@admin.register(AccessFailureLog)
class AuditedAccessFailureLogAdmin(AuditedDeletions, AccessFailureLogAdmin):
    """Failed logins as logged (django-axes): removing one is on the audit trail."""


@admin.register(AccessAttempt)
class AuditedAccessAttemptAdmin(AccessAttemptAdmin):
    """Failed logins; deleting a row unlocks that username on that address (audited)."""

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        _audit_unlock(request, [obj])
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        _audit_unlock(request, list(queryset))
        super().delete_queryset(request, queryset)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        return super().changelist_view(
            request, {"title": "Failed logins (delete to unlock)", **(extra_context or {})}
        )


def _audit_unlock(request: HttpRequest, attempts: list[Any]) -> None:
    for attempt in attempts:
        audit_log(
            action="auth.unlocked",
            request=request,
            before={
                "username": attempt.username,
                "ip_address": attempt.ip_address,
                "failures": attempt.failures_since_start,
            },
        )


def _permission_names(group: Any) -> set[str]:
    return {
        f"{p.content_type.app_label}.{p.codename}"
        for p in group.permissions.select_related("content_type")
    }


@admin.register(Group)
class AuditedGroupAdmin(AuditedDeletions, GroupAdmin):
    """The teams' permissions (superusers only): each change and deletion is audit-logged,
    with the permissions granted and taken away."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        stored = Group.objects.filter(pk=obj.pk).first() if change else None
        obj._vetsync_before = (  # the permissions are saved after the group (save_related)
            (stored.name, _permission_names(stored)) if stored is not None else ("", set())
        )
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        group = form.instance
        name, before = getattr(group, "_vetsync_before", ("", set()))
        after = _permission_names(group)
        audit_log(
            action=f"admin.group.{'changed' if change else 'created'}",
            request=request,
            obj=group,
            before={"name": name} if change else None,
            after={
                "name": group.name,
                "permissions_added": sorted(after - before),
                "permissions_removed": sorted(before - after),
            },
        )
