from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.db.models.signals import m2m_changed, post_delete, post_migrate, post_save


class ClinicsConfig(AppConfig):
    name = "clinics"
    verbose_name = "Clinics and integrations"

    def ready(self) -> None:
        from clinics.lockout import connect_lockout_signals

        connect_lockout_signals()
        post_migrate.connect(ensure_team_groups, dispatch_uid="clinics.ensure_team_groups")
        post_migrate.connect(
            ensure_onboarding_paths, sender=self, dispatch_uid="clinics.ensure_onboarding_paths"
        )
        # The menu is cached (clinics.context_processors); these drop it when it changes.
        from django.contrib.auth import get_user_model

        membership = self.get_model("Membership")
        for signal in (post_save, post_delete):
            signal.connect(_membership_changed, sender=membership, dispatch_uid=f"nav-{signal}")
        m2m_changed.connect(
            _groups_changed, sender=get_user_model().groups.through, dispatch_uid="nav-groups"
        )


def _membership_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    from clinics.context_processors import nav_cache_forget

    nav_cache_forget(instance.user)


def _groups_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    from django.contrib.auth import get_user_model

    from clinics.context_processors import nav_cache_forget

    if isinstance(instance, get_user_model()):
        nav_cache_forget(instance)
    else:  # group.user_set changed: every user it names
        for user in get_user_model().objects.filter(pk__in=kwargs.get("pk_set") or ()):
            nav_cache_forget(user)


# The teams that work across clinics, and the model permissions each needs in /admin/.
TEAM_PERMISSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "Onboarding team": {
        "clinics": (
            "clinic",
            "integration",
            "membership",
            "vet",
            "onboardingchecklist",
            "onboardingstep",
        ),
        # Users: invite and change clinic users, never delete (clinics.admin.users narrows
        # it further: no privileges, passwords, emails or teams).
        "add:auth": ("user",),
        # Failed logins: see them, delete one to unlock a username on an address.
        "unlock:axes": ("accessattempt",),
        "view:clinics": (
            "auditevent",
            "onboardingpath",
            "onboardingsteptemplate",
            "onboardingemail",
            "onboardingsummary",
        ),
        "view:records": ("client", "patient"),
    },
    "Pet Owner Care": {
        "view:records": ("client", "patient"),
    },
}


SCOPE_ACTIONS: dict[str, tuple[str, ...]] = {
    "": ("add", "change", "delete", "view"),
    "view": ("view",),
    "add": ("add", "change", "view"),
    "unlock": ("view", "delete"),
}


def ensure_team_groups(sender: AppConfig, **kwargs: Any) -> None:
    """Create the team groups and grant their permissions; runs after every migrate, idempotent.

    Permissions only exist after post_migrate, so a data migration cannot grant them.
    """
    from django.contrib.auth.models import Group, Permission

    using = kwargs.get("using", "default")
    for group_name, grants in TEAM_PERMISSIONS.items():
        group, _ = Group.objects.using(using).get_or_create(name=group_name)
        wanted = []
        for scope, models in grants.items():
            kind, _, app_label = scope.rpartition(":")
            actions = SCOPE_ACTIONS[kind]
            codenames = [f"{action}_{model}" for model in models for action in actions]
            wanted += list(
                Permission.objects.using(using).filter(
                    content_type__app_label=app_label, codename__in=codenames
                )
            )
        # set(), not add(): a permission no longer granted here is revoked from the group
        # (existing databases narrow at their next migrate).
        group.permissions.set(wanted)


def ensure_onboarding_paths(sender: AppConfig, **kwargs: Any) -> None:
    """Add any onboarding path missing after a migrate or a flush (the migration loads them)."""
    from clinics.onboarding_paths import onboarding_paths_install

    # migrate passes its model states; flush passes none (the current models then).
    apps = kwargs.get("apps") or global_apps
    try:
        apps.get_model("clinics", "OnboardingStepTemplate")
    except LookupError:  # migrated back to before the onboarding tables
        return
    onboarding_paths_install(apps, using=kwargs.get("using", "default"))
