"""The onboarding team walks each clinic through its path's checklist in /admin/."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from clinics import onboarding, services
from clinics.access import ONBOARDING_GROUP
from clinics.models import (
    AuditEvent,
    Connector,
    Integration,
    OnboardingChecklist,
    OnboardingEmail,
    OnboardingStep,
)
from clinics.tasks import onboarding_overdue_summary_task
from tests.conftest import World, login
from tests.factories import ClinicFactory, IntegrationFactory, UserFactory
from vetsync.pims.emulator import EzyVetEmulator

FINAL = "Final confirmation email when we begin receiving data"


class _Form(HTMLParser):
    """The values a browser would submit from the page's main form."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, str] = {}
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in {"submit", "button", "file"}:
            if a.get("type") == "checkbox" and "checked" not in a:
                return
            self.data[name] = a.get("value", "on" if a.get("type") == "checkbox" else "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = ""
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select] = a.get("value", "")

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.data[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None


def checklist_url(checklist: OnboardingChecklist) -> str:
    return reverse("admin:clinics_onboardingchecklist_change", args=[checklist.pk])


def submit_checklist(user: Any, checklist: OnboardingChecklist, **changes: str | None):
    """Open the checklist page as ``user``, change fields (None unticks), save."""
    client = login(user)
    page = client.get(checklist_url(checklist))
    assert page.status_code == 200
    form = _Form()
    form.feed(page.content.decode())
    data = {k: v for k, v in form.data.items() if k != "csrfmiddlewaretoken"}
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return client.post(checklist_url(checklist), data, follow=True)


def step_index(checklist: OnboardingChecklist, key: str) -> int:
    keys = list(checklist.steps.values_list("template__key", flat=True))
    return keys.index(key)


def step(checklist: OnboardingChecklist, key: str) -> OnboardingStep:
    return checklist.steps.select_related("template").get(template__key=key)


def integration_for(connector: str, email: str = "frontdesk@example.org") -> Integration:
    clinic = ClinicFactory(email=email)
    return IntegrationFactory(
        clinic=clinic, connector=connector, status=Integration.Status.ONBOARDING
    )


# --- The paths, as data -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("connector", "titles"),
    [
        (
            Connector.SYNCVET,
            [
                "Invitation to schedule the SyncVet installation sent",
                "Technical contact recorded",
                "SyncVet installation scheduled",
                "SyncVet agent installed with the technical contact",
            ],
        ),
        (
            Connector.VETSUCCESS,
            [
                "Access to the data requested from VetSuccess",
                "Email to the clinic confirming access was requested",
                "Access granted by VetSuccess",
            ],
        ),
        (
            Connector.VETDATA,
            [
                "Onboarding call: VetData installation time scheduled",
                "Temporary remote access to the PIMS server given to VetData",
                "Integration agent installed by VetData",
                "Remote connection to the server closed",
            ],
        ),
        (
            Connector.DATAPOINT,
            [
                "Cornerstone prepared for two-way integration",
                "Added to IDEXX DataPoint's integration request queue",
                "Email to the clinic confirming it was added to the queue",
                "DataPoint emailed the practice's primary contact",
                "Practice details, technical contact and EULA completed",
                "DataPoint installed the agent with the technical contact",
            ],
        ),
        (
            Connector.EZYVET,
            [
                "API credentials file uploaded",
                "Receipt of the credentials confirmed to the clinic",
                "Database connected (ezyVet issued a token, every scope works)",
            ],
        ),
    ],
)
def test_a_new_integration_gets_its_paths_checklist(
    world: World, connector: str, titles: list[str]
) -> None:
    integration = integration_for(connector)

    steps = list(integration.checklist.steps.select_related("template"))

    assert [s.template.title for s in steps] == [*titles, FINAL]
    assert all(s.done_at is None and s.due_at is None for s in steps)
    assert steps[-1].template.get_actor_display() == "VetSync (automatic)"


def test_datapoint_steps_say_who_acts_and_when_they_are_due(world: World) -> None:
    checklist = integration_for(Connector.DATAPOINT).checklist
    rows = [
        (s.template.get_actor_display(), s.template.due_rule_text)
        for s in checklist.steps.select_related("template__depends_on")
    ]
    assert rows == [
        ("Clinic", ""),
        ("VetSync onboarding team", ""),
        ("VetSync onboarding team", ""),
        ("IDEXX DataPoint", "within 48 h of step 2"),
        ("Clinic", ""),
        ("IDEXX DataPoint", "within 24 h of step 5"),
        ("VetSync (automatic)", ""),
    ]


def test_changing_the_connector_starts_the_new_paths_checklist(world: World) -> None:
    integration = integration_for(Connector.SYNCVET)
    integration.connector = Connector.VETDATA
    integration.save()

    checklist = OnboardingChecklist.objects.get(integration=integration)
    assert checklist.path.connector == Connector.VETDATA
    assert checklist.steps.count() == 5


# --- Due times and overdue flags ----------------------------------------------------------


def test_ticking_queued_in_the_admin_makes_datapoints_email_due_48h_later(world: World) -> None:
    checklist = integration_for(Connector.DATAPOINT).checklist
    i = step_index(checklist, "queued")

    page = submit_checklist(world.onboarding, checklist, **{f"steps-{i}-done": "on"})

    assert page.status_code == 200
    queued = step(checklist, "queued")
    assert queued.done_at is not None
    assert queued.done_by == world.onboarding
    assert step(checklist, "datapoint-email").due_at == queued.done_at + timedelta(hours=48)
    assert step(checklist, "installed").due_at is None  # its own dependency is not done yet


def test_an_overdue_datapoint_step_is_flagged_in_the_integration_list(world: World) -> None:
    late = integration_for(Connector.DATAPOINT)
    on_time = integration_for(Connector.DATAPOINT)
    three_days_ago = timezone.now() - timedelta(days=3)
    with mock.patch("django.utils.timezone.now", return_value=three_days_ago):
        onboarding.onboarding_step_update(
            step=step(late.checklist, "queued"), done=True, notes="", actor=world.onboarding
        )
    onboarding.onboarding_step_update(
        step=step(on_time.checklist, "queued"), done=True, notes="", actor=world.onboarding
    )
    client = login(world.onboarding)

    listing = client.get(reverse("admin:clinics_integration_changelist")).content.decode()
    overdue_only = client.get(
        reverse("admin:clinics_integration_changelist") + "?onboarding=overdue"
    ).content.decode()
    checklist_page = client.get(checklist_url(late.checklist)).content.decode()

    assert "1/7, 1 overdue" in listing
    assert "1/7</a>" in listing  # the one on time: no overdue flag
    assert late.clinic.name in overdue_only
    assert on_time.clinic.name not in overdue_only
    assert 'data-testid="step-overdue"' in checklist_page


def test_unticking_a_step_clears_the_due_time_it_started(world: World) -> None:
    checklist = integration_for(Connector.DATAPOINT).checklist
    queued = step(checklist, "queued")
    onboarding.onboarding_step_update(step=queued, done=True, notes="", actor=world.onboarding)
    onboarding.onboarding_step_update(
        step=queued, done=False, notes="queued by mistake", actor=world.onboarding
    )

    assert step(checklist, "datapoint-email").due_at is None
    assert step(checklist, "queued").notes == "queued by mistake"


# --- Technical contact --------------------------------------------------------------------


def test_syncvet_technical_contact_step_needs_a_contact(world: World) -> None:
    checklist = integration_for(Connector.SYNCVET).checklist
    i = step_index(checklist, "technical-contact")

    refused = submit_checklist(world.onboarding, checklist, **{f"steps-{i}-done": "on"})

    assert "Record the technical contact" in refused.content.decode()
    assert step(checklist, "technical-contact").done_at is None

    accepted = submit_checklist(
        world.onboarding,
        checklist,
        **{
            f"steps-{i}-done": "on",
            f"steps-{i}-notes": "Sam runs the server closet",
            "technical_contact_name": "Sam Rivera",
            "technical_contact_phone": "503 555 0199",
        },
    )

    assert "Record the technical contact" not in accepted.content.decode()
    done = step(checklist, "technical-contact")
    assert done.done_at is not None
    assert done.notes == "Sam runs the server closet"
    checklist.refresh_from_db()
    assert checklist.technical_contact_name == "Sam Rivera"
    assert AuditEvent.objects.filter(action="onboarding.step_updated", actor=world.onboarding)


def test_syncvet_agent_installed_cannot_be_ticked_without_a_technical_contact(
    world: World,
) -> None:
    checklist = integration_for(Connector.SYNCVET).checklist
    i = step_index(checklist, "agent-installed")

    refused = submit_checklist(world.onboarding, checklist, **{f"steps-{i}-done": "on"})

    assert "Record the technical contact" in refused.content.decode()
    assert step(checklist, "agent-installed").done_at is None

    submit_checklist(
        world.onboarding,
        checklist,
        **{
            f"steps-{i}-done": "on",
            "technical_contact_name": "Sam Rivera",
            "technical_contact_email": "sam@birch.example",
        },
    )
    assert step(checklist, "agent-installed").done_at is not None


def test_the_service_refuses_the_step_without_a_contact_too(world: World) -> None:
    from django.core.exceptions import ValidationError

    checklist = integration_for(Connector.DATAPOINT).checklist
    with pytest.raises(ValidationError):
        onboarding.onboarding_step_update(
            step=step(checklist, "practice-details"), done=True, notes=""
        )


# --- Emails from the admin ----------------------------------------------------------------


def test_the_team_previews_and_sends_a_steps_email_from_the_admin(world: World) -> None:
    integration = integration_for(Connector.DATAPOINT, email="primary@alderclinic.example")
    checklist = integration.checklist
    queue_email = step(checklist, "queue-email")
    url = reverse(
        "admin:clinics_onboardingchecklist_step_email", args=[checklist.pk, queue_email.pk]
    )
    client = login(world.onboarding)

    preview = client.get(url).content.decode()
    assert mail.outbox == []
    assert "primary@alderclinic.example" in preview
    assert "within 48 hours" in preview

    page = client.post(url, follow=True).content.decode()

    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["primary@alderclinic.example"]
    assert (
        sent.subject == f"{integration.clinic.name}: you're in IDEXX DataPoint's integration queue"
    )
    assert f"Hello {integration.clinic.name}," in sent.body
    assert "{{" not in sent.body
    assert "Sent “" in page
    record = OnboardingEmail.objects.get(checklist=checklist)
    assert (record.step, record.subject, record.sent_by_label) == (
        queue_email,
        sent.subject,
        "onboarder",
    )
    assert escape(record.subject) in page  # the checklist lists what was sent
    queue_email.refresh_from_db()
    assert queue_email.email_sent_at is not None
    assert queue_email.done_at is not None  # the step is the email
    audit = AuditEvent.objects.get(action="onboarding.email_sent")
    assert audit.actor == world.onboarding
    assert audit.clinic == integration.clinic
    assert audit.after["to"] == "primary@alderclinic.example"


def test_a_clinic_without_a_primary_contact_email_gets_nothing(world: World) -> None:
    checklist = integration_for(Connector.VETSUCCESS, email="").checklist
    mail_step = step(checklist, "access-request-email")
    url = reverse("admin:clinics_onboardingchecklist_step_email", args=[checklist.pk, mail_step.pk])

    page = login(world.onboarding).post(url, follow=True).content.decode()

    assert "has no primary contact email" in page
    assert mail.outbox == []
    assert not OnboardingEmail.objects.exists()


# --- ezyVet ticks itself -------------------------------------------------------------------


@pytest.fixture
def site() -> Iterator[EzyVetEmulator]:
    emulator = EzyVetEmulator(clients=5, seed=1, rate_per_minute=0, endpoint_rate_per_minute=0)
    emulator.start()
    yield emulator
    emulator.stop()


def test_ezyvet_credentials_upload_and_connection_tick_their_steps(world: World, site) -> None:
    integration = integration_for(Connector.EZYVET)
    Integration.objects.filter(pk=integration.pk).update(base_url=site.base_url)
    integration.refresh_from_db()

    check = services.integration_connect_ezyvet(
        integration=integration, text=site.credentials.as_text(), actor=world.onboarding
    )

    assert check.ok
    checklist = integration.checklist
    assert step(checklist, "credentials-uploaded").done_at is not None
    assert step(checklist, "database-connected").done_at is not None
    assert step(checklist, "receipt-confirmed").done_at is None  # the team's email


def test_refused_ezyvet_credentials_are_not_kept_and_tick_nothing(world: World, site) -> None:
    integration = integration_for(Connector.EZYVET)
    Integration.objects.filter(pk=integration.pk).update(base_url=site.base_url)
    integration.refresh_from_db()
    text = site.credentials.as_text().replace("demo-secret", "stale-secret")

    trial = services.integration_connect_ezyvet(integration=integration, text=text)

    assert not trial.ok and not trial.kept
    integration.refresh_from_db()
    assert not integration.has_credentials
    assert step(integration.checklist, "credentials-uploaded").done_at is None
    assert step(integration.checklist, "database-connected").done_at is None


# --- Final confirmation ---------------------------------------------------------------------


def test_the_first_successful_sync_sends_the_final_confirmation_once(
    world: World, django_capture_on_commit_callbacks
) -> None:
    integration = integration_for(Connector.VETDATA, email="primary@birch.example")
    assert integration.status == Integration.Status.ONBOARDING  # still onboarding: no gate

    with django_capture_on_commit_callbacks(execute=True):
        services.integration_record_sync(clinic_id=integration.clinic_id, ok=False, error="x")
    assert mail.outbox == []  # a failed run is not data

    with django_capture_on_commit_callbacks(execute=True):
        services.integration_record_sync(clinic_id=integration.clinic_id, ok=True)
    with django_capture_on_commit_callbacks(execute=True):
        services.integration_record_sync(clinic_id=integration.clinic_id, ok=True)

    assert [m.subject for m in mail.outbox] == [
        f"{integration.clinic.name}: we're receiving your practice data"
    ]
    assert mail.outbox[0].to == ["primary@birch.example"]
    assert "VetData agent" in mail.outbox[0].body
    # Sent once the first sync has copied the data: the list is there now, not in a week.
    assert "week" not in mail.outbox[0].body
    assert "can see it in VetSync now" in mail.outbox[0].body
    final = step(integration.checklist, "final-confirmation")
    assert final.done_at is not None
    assert final.email_sent_at is not None
    assert final.done_by_label == "sync"
    assert OnboardingEmail.objects.filter(step=final).count() == 1
    assert (
        AuditEvent.objects.filter(action="onboarding.email_sent", actor_label="sync").count() == 1
    )


def test_the_final_confirmation_is_not_sent_before_the_sync_commits(
    world: World, django_capture_on_commit_callbacks
) -> None:
    integration = integration_for(Connector.SYNCVET)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.integration_record_sync(clinic_id=integration.clinic_id, ok=True)

    assert mail.outbox == []
    assert len(callbacks) == 1


def test_a_retried_final_confirmation_task_sends_nothing_more(world: World) -> None:
    checklist = integration_for(Connector.DATAPOINT).checklist

    first = onboarding.onboarding_final_confirmation_send(checklist_id=checklist.pk)
    again = onboarding.onboarding_final_confirmation_send(checklist_id=checklist.pk)

    assert first is not None
    assert again is None
    assert len(mail.outbox) == 1


def test_without_a_primary_contact_the_final_step_stays_open_with_a_note(
    world: World, django_capture_on_commit_callbacks
) -> None:
    integration = integration_for(Connector.SYNCVET, email="")

    with django_capture_on_commit_callbacks(execute=True):
        services.integration_record_sync(clinic_id=integration.clinic_id, ok=True)

    assert mail.outbox == []
    final = step(integration.checklist, "final-confirmation")
    assert final.done_at is None
    assert "no primary contact email" in final.notes


def test_a_lost_final_confirmation_is_sent_by_the_sweep_once(
    world: World, django_capture_on_commit_callbacks
) -> None:
    from clinics.tasks import onboarding_final_confirmations_sweep_task

    lost = integration_for(Connector.SYNCVET)
    with django_capture_on_commit_callbacks(execute=False):  # the broker was down: never queued
        services.integration_record_sync(clinic_id=lost.clinic_id, ok=True)
    fresh = integration_for(Connector.DATAPOINT)
    with django_capture_on_commit_callbacks(execute=False):
        services.integration_record_sync(clinic_id=fresh.clinic_id, ok=True)
    OnboardingChecklist.objects.filter(pk=lost.checklist.pk).update(
        receiving_data_since=timezone.now() - timedelta(minutes=10)
    )

    assert onboarding_final_confirmations_sweep_task() == 1
    # The lost one went; the fresh one's own task may still be on its way; nothing twice.
    assert [m.to for m in mail.outbox] == [[lost.clinic.email]]
    assert step(lost.checklist, "final-confirmation").email_sent_at is not None
    assert step(fresh.checklist, "final-confirmation").email_sent_at is None
    assert onboarding_final_confirmations_sweep_task() == 0
    assert len(mail.outbox) == 1


def test_the_sweep_leaves_confirmations_the_team_sends_by_hand(
    world: World, django_capture_on_commit_callbacks
) -> None:
    from clinics.tasks import onboarding_final_confirmations_sweep_task

    no_contact = integration_for(Connector.SYNCVET, email="")
    with django_capture_on_commit_callbacks(execute=True):  # the task ran: no address, a note
        services.integration_record_sync(clinic_id=no_contact.clinic_id, ok=True)
    ticked = integration_for(Connector.DATAPOINT)
    with django_capture_on_commit_callbacks(execute=False):
        services.integration_record_sync(clinic_id=ticked.clinic_id, ok=True)
    OnboardingStep.objects.filter(pk=step(ticked.checklist, "final-confirmation").pk).update(
        done_at=timezone.now()
    )
    OnboardingChecklist.objects.filter(
        pk__in=[no_contact.checklist.pk, ticked.checklist.pk]
    ).update(receiving_data_since=timezone.now() - timedelta(hours=1))

    assert onboarding_final_confirmations_sweep_task() == 0
    assert mail.outbox == []
    assert AuditEvent.objects.filter(action="onboarding.final_email_not_sent").count() == 1


# --- Daily summary --------------------------------------------------------------------------


def test_the_daily_summary_lists_overdue_steps_to_the_team_once(world: World) -> None:
    team = Group.objects.get(name=ONBOARDING_GROUP)
    colleague = UserFactory(username="colleague", email="colleague@vetsync.example")
    colleague.groups.add(team)
    gone = UserFactory(username="gone", email="gone@vetsync.example", is_active=False)
    gone.groups.add(team)
    UserFactory(username="no-mail", email="").groups.add(team)
    late = integration_for(Connector.DATAPOINT)
    fine = integration_for(Connector.DATAPOINT)
    with mock.patch("django.utils.timezone.now", return_value=timezone.now() - timedelta(days=3)):
        onboarding.onboarding_step_update(step=step(late.checklist, "queued"), done=True, notes="")
    onboarding.onboarding_step_update(step=step(fine.checklist, "queued"), done=True, notes="")

    assert onboarding_overdue_summary_task.delay().get() == 1
    assert onboarding_overdue_summary_task.delay().get() == 0  # the same day again: nothing

    assert len(mail.outbox) == 1
    summary = mail.outbox[0]
    assert sorted(summary.to) == ["colleague@vetsync.example", "onboarder@example.org"]
    assert summary.subject.startswith("Onboarding: 1 overdue step")
    assert late.clinic.name in summary.body
    assert "DataPoint emailed the practice's primary contact" in summary.body
    assert "overdue by 1 d" in summary.body
    assert checklist_url(late.checklist) in summary.body
    assert fine.clinic.name not in summary.body


def test_no_summary_when_nothing_is_overdue(world: World) -> None:
    integration_for(Connector.DATAPOINT)
    assert onboarding_overdue_summary_task.delay().get() == 0
    assert mail.outbox == []


# --- Who reaches it -------------------------------------------------------------------------


def test_the_onboarding_team_reaches_the_checklists_and_clinic_staff_cannot(world: World) -> None:
    checklist = world.a.clinic.integration.checklist
    mail_step = step(checklist, "invite-schedule")
    email_url = reverse(
        "admin:clinics_onboardingchecklist_step_email", args=[checklist.pk, mail_step.pk]
    )
    urls = [
        reverse("admin:clinics_onboardingchecklist_changelist"),
        checklist_url(checklist),
        reverse("admin:clinics_integration_changelist"),
    ]

    for url in urls:
        assert login(world.onboarding).get(url).status_code == 200
    for user in (world.a.staff, world.a.vet_user, world.care):
        for url in urls:
            response = login(user).get(url)
            assert response.status_code == 302
            assert response["Location"].startswith(reverse("admin:login"))
        assert login(user).post(email_url).status_code == 302
    assert mail.outbox == []
