"""What the admin changes in bulk is on the audit trail too, and clients and pets change only
through VetSync's own flows (renames re-prescribe, held changes wait for staff)."""

from __future__ import annotations

from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.urls import reverse

from clinics.models import AuditEvent, Membership, Role, Vet
from records.models import Client, Patient
from tests.conftest import World, login
from tests.factories import ClientFactory, MembershipFactory, PatientFactory, UserFactory


def test_deleting_selected_memberships_and_vets_leaves_an_audit_row_each(world: World) -> None:
    extra = UserFactory(username="extra")
    MembershipFactory(user=extra, clinic=world.a.clinic, role=Role.VET)
    memberships = list(Membership.objects.filter(clinic=world.a.clinic).order_by("pk"))
    onboarding = login(world.onboarding)

    response = onboarding.post(
        reverse("admin:clinics_membership_changelist"),
        {
            "action": "delete_selected",
            "post": "yes",
            ACTION_CHECKBOX_NAME: [m.pk for m in memberships],
        },
    )
    assert response.status_code == 302
    assert not Membership.objects.filter(clinic=world.a.clinic).exists()
    rows = AuditEvent.objects.filter(action="admin.membership.deleted")
    assert sorted((int(r.object_id), r.actor, r.clinic) for r in rows) == [
        (m.pk, world.onboarding, world.a.clinic) for m in memberships
    ]
    assert {r.before["role"] for r in rows} == {m.role for m in memberships}

    onboarding.post(
        reverse("admin:clinics_vet_changelist"),
        {"action": "delete_selected", "post": "yes", ACTION_CHECKBOX_NAME: [world.b.vet.pk]},
    )
    assert not Vet.objects.filter(pk=world.b.vet.pk).exists()
    assert AuditEvent.objects.filter(
        action="admin.vet.deleted", object_id=str(world.b.vet.pk), actor=world.onboarding
    ).exists()


def test_clients_and_pets_are_read_only_in_the_admin_even_for_a_superuser(world: World) -> None:
    root = get_user_model().objects.create_superuser("root", "root@example.org", "pw-0123-xyz")
    client = ClientFactory(clinic=world.a.clinic, first_name="Dana")
    pet = PatientFactory(client=client, name="Biscuit")
    admin = login(root)

    page = admin.get(reverse("admin:records_patient_change", args=[pet.pk]))
    assert page.status_code == 200 and "Biscuit" in page.text  # they can look
    admin.post(
        reverse("admin:records_patient_change", args=[pet.pk]),
        {"name": "Rex", "client": client.pk, "clinic": world.a.clinic.pk, "species": "Canine"},
    )
    admin.post(
        reverse("admin:records_client_changelist"),
        {"action": "delete_selected", "post": "yes", ACTION_CHECKBOX_NAME: [client.pk]},
    )
    assert admin.get(reverse("admin:records_client_add")).status_code == 403
    pet.refresh_from_db()
    assert pet.name == "Biscuit"  # a rename is the rename flow, with its re-prescription
    assert Client.objects.filter(pk=client.pk).exists()
    assert Patient.objects.filter(pk=pet.pk).exists()


def test_a_superusers_change_to_a_teams_permissions_is_on_the_audit_trail(world: World) -> None:
    from django.contrib.auth.models import Group, Permission

    root = get_user_model().objects.create_superuser("root", "root@example.org", "pw-0123-xyz")
    care = Group.objects.get(name="Pet Owner Care")
    before = sorted(care.permissions.values_list("pk", flat=True))
    lead = Permission.objects.get(codename="view_care_log")

    response = login(root).post(
        reverse("admin:auth_group_change", args=[care.pk]),
        {"name": care.name, "permissions": [*before, lead.pk]},
    )

    assert response.status_code == 302
    assert care.permissions.filter(pk=lead.pk).exists()
    event = AuditEvent.objects.get(action="admin.group.changed")
    assert event.actor == root and event.object_repr == "Pet Owner Care"
    assert event.after["permissions_added"] == ["records.view_care_log"]
    assert event.after["permissions_removed"] == []

    login(root).post(reverse("admin:auth_group_delete", args=[care.pk]), {"post": "yes"})
    assert AuditEvent.objects.filter(action="admin.group.deleted", actor=root).exists()


def test_every_list_a_superuser_can_delete_from_leaves_an_audit_row(world: World) -> None:
    """Deleting in the admin, one object or "Delete selected", is audit-logged on every model
    that allows it (failed logins are logged as unlocks)."""
    import datetime as dt

    from axes.models import AccessAttempt
    from django.contrib import admin
    from django.test import RequestFactory

    from clinics.admin.audit import AuditedDeletions
    from clinics.models import OnboardingSummary

    superuser = get_user_model().objects.create_superuser("root", "root@example.org", "x")
    request = RequestFactory().get("/admin/")
    request.user = superuser
    unaudited = [
        model._meta.label
        for model, model_admin in admin.site._registry.items()
        if model_admin.has_delete_permission(request)
        and not isinstance(model_admin, AuditedDeletions)
        and model is not AccessAttempt
    ]
    assert unaudited == []

    summary = OnboardingSummary.objects.create(
        day=dt.date(2026, 12, 1), overdue_steps=3, recipients="team@example.org"
    )
    response = login(superuser).post(
        reverse("admin:clinics_onboardingsummary_changelist"),
        {"action": "delete_selected", "post": "yes", ACTION_CHECKBOX_NAME: [summary.pk]},
    )
    assert response.status_code == 302
    row = AuditEvent.objects.get(action="admin.onboardingsummary.deleted")
    assert (row.actor, row.before["overdue_steps"]) == (superuser, 3)
