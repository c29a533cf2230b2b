"""The one function every write calls to leave an audit trail."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models
from django.http import HttpRequest

from clinics.models import AuditEvent, Clinic

SYSTEM_SYNC = "sync"
SYSTEM = "system"


def client_ip(request: HttpRequest) -> str | None:
    # Behind a proxy, SecurityMiddleware-style trust is configured at the proxy; REMOTE_ADDR
    # is the address Django was given.
    return request.META.get("REMOTE_ADDR") or None


def audit_log(
    *,
    action: str,
    actor: AbstractBaseUser | AnonymousUser | None = None,
    actor_label: str = "",
    clinic: Clinic | None = None,
    obj: models.Model | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
) -> AuditEvent:
    """Record who did what to which object, with its values before and after."""
    if request is not None and actor is None:
        actor = request.user
    user = actor if actor is not None and actor.is_authenticated else None
    if not actor_label:
        actor_label = user.get_username() if user is not None else SYSTEM
    if clinic is None and obj is not None:
        clinic = getattr(obj, "clinic", None) if not isinstance(obj, Clinic) else obj
    return AuditEvent.objects.create(
        action=action,
        actor_id=user.pk if user is not None else None,
        actor_label=actor_label[:150],
        clinic=clinic,
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        before=before,
        after=after,
        ip_address=client_ip(request) if request is not None else None,
    )
