"""The onboarding team administers clinic users and nothing more (issue 17, item 1): no
privileges, no passwords, no emails, not its own team; every change audited."""

from __future__ import annotations

import re

from django.contrib.auth.models import Group, Permission, User
from django.core import mail
from django.test import Client as HttpClient
from django.urls import reverse

from clinics.access import ONBOARDING_GROUP
from clinics.apps import ensure_team_groups
from clinics.models import AuditEvent, Membership, Role, Vet
from tests.conftest import World, login
from tests.factories import UserFactory

CHANGE = "admin:auth_user_change"


def change_url(user: User) -> str:
    return reverse(CHANGE, args=[user.pk])


def test_onboarding_invites_a_clinic_user_who_sets_a_password_from_the_link(
    world: World, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = login(world.onboarding).post(
            reverse("admin:auth_user_add"),
            {
                "email": "New.Vet@Alder.example",
                "first_name": "Nia",
                "last_name": "Vet",
                "clinic": world.a.clinic.pk,
                "role": Role.VET,
                "memberships-TOTAL_FORMS": "0",
                "memberships-INITIAL_FORMS": "0",
            },
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    user = User.objects.get(username="new.vet@alder.example")
    assert not user.has_usable_password() and not user.is_staff and not user.is_superuser
    assert Membership.objects.get(user=user).role == Role.VET
    assert AuditEvent.objects.filter(action="user.invited", object_id=str(user.pk)).exists()
    (message,) = mail.outbox
    assert message.to == ["new.vet@alder.example"]
    link = re.search(r"http://\S+/accounts/reset/\S+", message.body).group(0)
    path = link.split("8000", 1)[1] if "8000" in link else link

    browser = HttpClient()
    form_page = browser.get(path, follow=True)
    assert form_page.status_code == 200
    set_url = form_page.redirect_chain[-1][0] if form_page.redirect_chain else path
    done = browser.post(
        set_url, {"new_password1": "a-long-new-pass-2026", "new_password2": "a-long-new-pass-2026"}
    )
    assert done.status_code == 302
    user.refresh_from_db()
    assert user.check_password("a-long-new-pass-2026")
    # The link works once.
    assert "already been used" in HttpClient().get(path, follow=True).content.decode()


def test_onboarding_cannot_grant_privileges_even_by_posting_them(world: World) -> None:
    admin = login(world.onboarding)
    target = world.a.staff
    response = admin.post(
        change_url(target),
        {
            "username": target.username,
            "first_name": "Changed",
            "last_name": target.last_name,
            "is_active": "on",
            "is_superuser": "on",
            "is_staff": "on",
            "groups": [Group.objects.get(name=ONBOARDING_GROUP).pk],
            "email": "attacker@example.org",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "1",
            "memberships-0-id": Membership.objects.get(user=target).pk,
            "memberships-0-user": target.pk,
            "memberships-0-clinic": world.a.clinic.pk,
            "memberships-0-role": Role.ADMIN,
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    target.refresh_from_db()
    assert target.first_name == "Changed"
    assert not target.is_superuser and not target.is_staff
    assert target.email != "attacker@example.org"
    assert not target.groups.exists()
    assert Membership.objects.get(user=target).role == Role.ADMIN
    change = AuditEvent.objects.get(action="user.changed", object_id=str(target.pk))
    assert change.after == {"first_name": "Changed"} and "first_name" in change.before
    role = AuditEvent.objects.get(action="admin.membership.changed")
    assert (role.before, role.after) == ({"role": Role.STAFF}, {"role": Role.ADMIN})


def test_onboarding_cannot_reach_itself_its_team_staff_or_passwords(world: World) -> None:
    admin = login(world.onboarding)
    superuser = UserFactory(username="root", is_superuser=True, is_staff=True)
    colleague = UserFactory(username="colleague", is_staff=True)
    colleague.groups.add(Group.objects.get(name=ONBOARDING_GROUP))
    for user in (world.onboarding, colleague, superuser, world.care):
        assert admin.get(change_url(user)).status_code == 302  # "doesn't exist" → index
        assert admin.post(change_url(user), {"is_superuser": "on"}).status_code == 302
    world.onboarding.refresh_from_db()
    assert not world.onboarding.is_superuser
    password = reverse("admin:auth_user_password_change", args=[world.a.staff.pk])
    assert admin.get(password).status_code == 403
    assert (
        admin.post(password, {"password1": "x-Y-z-12345", "password2": "x-Y-z-12345"}).status_code
        == 403
    )
    listing = admin.get(reverse("admin:auth_user_changelist")).content.decode()
    assert "alder-staff" in listing and "colleague" not in listing and "root" not in listing


def test_onboarding_cannot_give_itself_a_membership_or_a_vets_login(world: World) -> None:
    admin = login(world.onboarding)
    response = admin.post(
        reverse("admin:clinics_membership_add"),
        {"user": world.onboarding.pk, "clinic": world.a.clinic.pk, "role": Role.VET},
    )
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    vet = world.a.vet
    response = admin.post(
        reverse("admin:clinics_vet_change", args=[vet.pk]),
        {
            "clinic": vet.clinic_id,
            "first_name": vet.first_name,
            "last_name": vet.last_name,
            "licence_number": "",
            "pims_user_id": "",
            "user": world.onboarding.pk,
            "is_active": "on",
        },
    )
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not Membership.objects.filter(user=world.onboarding).exists()
    assert Vet.objects.get(pk=vet.pk).user == world.a.vet_user


def test_deactivating_is_audited_and_nobody_is_deleted(world: World) -> None:
    admin = login(world.onboarding)
    response = admin.post(
        reverse("admin:auth_user_changelist"),
        {"action": "deactivate", "_selected_action": [world.a.staff.pk]},
    )
    assert response.status_code == 302
    world.a.staff.refresh_from_db()
    assert not world.a.staff.is_active
    event = AuditEvent.objects.get(action="user.deactivated")
    assert (event.before, event.after) == ({"is_active": True}, {"is_active": False})
    delete = admin.post(
        reverse("admin:auth_user_changelist"),
        {"action": "delete_selected", "_selected_action": [world.a.vet_user.pk]},
    )
    assert User.objects.filter(pk=world.a.vet_user.pk).exists()
    assert delete.status_code in (200, 302)


def test_only_a_superuser_resets_two_factor_or_changes_an_email(world: World) -> None:
    from tests.two_factor import enrolled_device

    enrolled_device(world.a.vet_user)
    onboarding = login(world.onboarding)
    onboarding.post(
        reverse("admin:auth_user_changelist"),
        {"action": "reset_two_factor", "_selected_action": [world.a.vet_user.pk]},
    )
    assert world.a.vet_user.totpdevice_set.filter(confirmed=True).exists()

    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    superuser = login(root)
    superuser.post(
        reverse("admin:auth_user_changelist"),
        {"action": "reset_two_factor", "_selected_action": [world.a.vet_user.pk]},
    )
    assert not world.a.vet_user.totpdevice_set.exists()
    event = AuditEvent.objects.get(action="auth.two_factor_reset")
    assert event.actor == root and event.object_id == str(world.a.vet_user.pk)


def test_the_groups_permissions_are_revoked_as_well_as_granted(world: World) -> None:
    group = Group.objects.get(name=ONBOARDING_GROUP)
    group.permissions.add(
        Permission.objects.get(codename="delete_user"),
        Permission.objects.get(codename="change_group"),
    )
    ensure_team_groups(sender=None)  # what every migrate runs
    codenames = set(group.permissions.values_list("codename", flat=True))
    assert "delete_user" not in codenames and "change_group" not in codenames
    assert {"add_user", "change_user", "view_user", "change_membership"} <= codenames
