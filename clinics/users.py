"""Clinic users, as the onboarding team manages them: invite (a one-time link to set a
password), change, deactivate. Only a superuser may touch privileges, passwords, emails, or
the teams that work across clinics; every change is an AuditEvent with before and after."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import PermissionDenied
from django.core.mail import EmailMessage
from django.db import models, transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from clinics.access import CARE_GROUP, ONBOARDING_GROUP
from clinics.audit import audit_log
from clinics.models import Clinic, Membership

# What only a superuser may change on a user: each is a path to someone else's account.
PRIVILEGED_FIELDS = ("is_staff", "is_superuser", "email", "password", "groups", "user_permissions")
TEAM_GROUPS = (ONBOARDING_GROUP, CARE_GROUP)


def user_snapshot(user: Any) -> dict[str, Any]:
    """What the audit trail keeps of a user (never the password hash: only whether one is set)."""
    saved = user.pk is not None
    return {
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "has_usable_password": user.has_usable_password(),
        "password_changed": False,
        "groups": sorted(user.groups.values_list("name", flat=True)) if saved else [],
        "user_permissions": sorted(
            f"{p.content_type.app_label}.{p.codename}"
            for p in user.user_permissions.select_related("content_type")
        )
        if saved
        else [],
    }


def clinic_users(actor: Any) -> models.QuerySet[Any]:
    """The users an actor may manage: a superuser all; the onboarding team only clinic users
    (never staff, superusers, or anyone in the teams that work across clinics)."""
    users = get_user_model().objects.all()
    if getattr(actor, "is_superuser", False):
        return users
    return users.filter(is_staff=False, is_superuser=False).exclude(groups__name__in=TEAM_GROUPS)


def _refused_changes(*, before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    """The privileged fields a save changed (for a new user: granted at all)."""
    if before is None:
        return [f for f in ("is_staff", "is_superuser", "groups", "user_permissions") if after[f]]
    refused = [f for f in PRIVILEGED_FIELDS if f in after and before.get(f) != after[f]]
    return refused + (["password"] if after["password_changed"] else [])


def user_record_change(
    *, user: Any, before: dict[str, Any] | None, actor: Any, request: HttpRequest | None = None
) -> None:
    """Audit a user saved through the admin (after its groups are saved). A privileged change
    by someone not a superuser raises PermissionDenied, which rolls the admin's save back."""
    after = user_snapshot(user)
    if before is not None:
        after["password_changed"] = before["password_hash"] != user.password
        before = {k: v for k, v in before.items() if k != "password_hash"}
    refused = _refused_changes(before=before, after=after)
    if refused and not actor.is_superuser:
        raise PermissionDenied(f"Only a superuser may change {', '.join(refused)}.")
    changed = [k for k in after if before is None or before.get(k) != after[k]]
    audit_log(
        action=f"user.{'changed' if before is not None else 'created'}",
        actor=actor,
        obj=user,
        before={k: before[k] for k in changed} if before is not None else None,
        after={k: after[k] for k in changed},
        request=request,
    )


def user_before(user: Any) -> dict[str, Any]:
    """A user's state before an admin save, taken from the database."""
    stored = type(user)._default_manager.get(pk=user.pk)
    return {**user_snapshot(stored), "password_hash": stored.password}


def invitation_send(*, user: Any, request: HttpRequest | None = None, actor: Any = None) -> str:
    """Email the user a one-time link to set their password; returns the link.

    The link is Django's password-reset token: it stops working once a password is set (or
    after PASSWORD_RESET_TIMEOUT).
    """
    path = reverse(
        "password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    link = settings.SITE_URL.rstrip("/") + path
    memberships = list(Membership.objects.filter(user=user).select_related("clinic"))
    EmailMessage(
        subject="Your VetSync account",
        body=render_to_string(
            "emails/user_invitation.txt",
            {"user": user, "link": link, "memberships": memberships},
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[user.email],
    ).send()
    audit_log(
        action="user.invitation_sent",
        actor=actor,
        obj=user,
        after={"email": user.email},
        request=request,
    )
    return link


def user_invite(
    *,
    user: Any,
    clinic: Clinic,
    role: str,
    actor: Any,
    request: HttpRequest | None = None,
) -> Any:
    """Create a clinic user (email as username, no password) with one membership, and email
    them the link to set a password."""
    user.email = user.email.strip().lower()
    user.username = user.email
    user.is_staff = user.is_superuser = False
    user.set_unusable_password()
    with transaction.atomic():
        user.save()
        membership = Membership.objects.create(user=user, clinic=clinic, role=role)
        audit_log(
            action="user.invited",
            actor=actor,
            obj=user,
            clinic=clinic,
            after={**user_snapshot(user), "clinic": clinic.slug, "role": role},
            request=request,
        )
        audit_log(
            action="membership.created",
            actor=actor,
            obj=membership,
            after={"user": user.username, "clinic": clinic.slug, "role": role},
            request=request,
        )
        transaction.on_commit(lambda: invitation_send(user=user, request=request, actor=actor))
    return user


def users_deactivate(*, users: list[Any], actor: Any, request: HttpRequest | None = None) -> int:
    """Deactivate users (they can no longer log in; their history stays)."""
    # Which of them the actor may manage: one query for the selection, not one per user.
    allowed = set(
        clinic_users(actor).filter(pk__in=[user.pk for user in users]).values_list("pk", flat=True)
    )
    done = 0
    with transaction.atomic():
        for user in users:
            if not user.is_active or user.pk not in allowed or user.pk == actor.pk:
                continue
            user.is_active = False
            user.save(update_fields=["is_active"])
            audit_log(
                action="user.deactivated",
                actor=actor,
                obj=user,
                before={"is_active": True},
                after={"is_active": False},
                request=request,
            )
            done += 1
    return done


def user_email_change(
    *, user: Any, email: str, actor: Any, request: HttpRequest | None = None
) -> None:
    """Change a login's email (where password resets go): only a superuser, or the user
    themselves once confirmed (the caller checks their password and second factor)."""
    if actor.pk != user.pk and not actor.is_superuser:
        raise PermissionDenied("Only a superuser may change someone else's email.")
    email = email.strip().lower()
    before = user.email
    with transaction.atomic():
        user.email = email
        user.save(update_fields=["email"])
        audit_log(
            action="user.email_changed",
            actor=actor,
            obj=user,
            before={"email": before},
            after={"email": email},
            request=request,
        )
