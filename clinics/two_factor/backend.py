"""The session's user, loaded with what the two-factor policy needs in the same query."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend

from clinics.two_factor.policy import two_factor_flags


class UserWithTwoFactorBackend(ModelBackend):
    """Django's model backend, whose per-request ``get_user`` also answers "enrolled? must
    enrol?": every page an unverified user opens saves the query the policy would make."""

    def get_user(self, user_id: Any) -> Any:
        user = (
            get_user_model()
            ._default_manager.annotate(**two_factor_flags())
            .filter(pk=user_id)
            .first()
        )
        return user if user is not None and self.user_can_authenticate(user) else None
