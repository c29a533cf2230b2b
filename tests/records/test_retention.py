"""Retention: sync history past its age goes in bounded batches; what is young or still needed
stays; a pruned run's page says what happened to its outcomes."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from records.models import (
    Client,
    ManualUpdate,
    MatchModelFit,
    SyncRecordOutcome,
    SyncRun,
    SyncRunPayload,
)
from records.retention import retention_prune
from records.sync import sync_run_create
from tests.conftest import World, login
from tests.records.batches import batch, ingest, owner, pet
from vetsync.ops.sessions import sessions_expired_delete
from vetsync.ops.tasks import retention_prune_task

LATER = "2026-11-25T09:00:00Z"


def age(run: SyncRun, days: int) -> SyncRun:
    SyncRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - dt.timedelta(days=days))
    run.refresh_from_db()
    return run


def outcomes_of(run: SyncRun) -> list[str]:
    return sorted(SyncRecordOutcome.objects.filter(run=run).values_list("pims_id", flat=True))


def test_old_outcomes_go_young_ones_stay_and_counts_stay_for_good(world: World) -> None:
    old = age(ingest(world.a.clinic, batch(owner(), owner("C-2", patients=[pet("P-2")]))), 91)
    young = age(ingest(world.a.clinic, batch(owner("C-3"))), days=89)

    report = retention_prune()

    assert report.finished and report.runs == 1 and report.outcomes == 4
    assert outcomes_of(old) == [] and outcomes_of(young) == ["C-3", "P-1"]
    old.refresh_from_db()
    assert old.pruned_at is not None and old.counts == {"created": 4}
    assert SyncRun.objects.get(pk=young.pk).pruned_at is None
    # A second tick finds nothing more to do.
    assert retention_prune().outcomes == 0


def test_the_retention_age_is_a_setting(world: World, settings) -> None:
    run = age(ingest(world.a.clinic, batch(owner())), days=10)
    settings.SYNC_HISTORY_RETENTION_DAYS = 7
    retention_prune()
    assert outcomes_of(run) == []


def test_a_run_with_a_pending_manual_update_is_kept_until_it_is_resolved(world: World) -> None:
    age(ingest(world.a.clinic, batch(owner())), days=200)
    held = age(ingest(world.a.clinic, batch(owner(first_name="Danielle", modified_at=LATER))), 100)
    update = ManualUpdate.objects.get(run=held, status="pending")

    retention_prune()
    assert outcomes_of(held) == ["C-1", "P-1"]
    assert SyncRun.objects.get(pk=held.pk).pruned_at is None

    login(world.a.staff).post(
        reverse("records:update-action", args=["alder", update.pk]),
        {"action": "dismiss", "reason": "Ships to her maiden name"},
    )
    assert ManualUpdate.objects.get(pk=update.pk).status == "dismissed"
    retention_prune()
    assert outcomes_of(held) == []


def test_an_open_quarantined_record_stays_until_retried(
    world: World, django_capture_on_commit_callbacks
) -> None:
    run = age(
        ingest(world.a.clinic, batch(owner(patients=[pet(weight=-2)]), owner("C-2", patients=[]))),
        95,
    )

    retention_prune()

    kept = SyncRecordOutcome.objects.get(run=run)
    assert kept.outcome == "quarantined" and kept.pims_id == "P-1"
    staff = login(world.a.staff)
    page = staff.get(run.get_absolute_url()).content.decode()
    assert "Quarantined records" in page and "Retry the ticked records" in page

    with django_capture_on_commit_callbacks(execute=True):
        staff.post(reverse("records:run-retry", args=["alder", run.pk]))
    retention_prune()
    assert outcomes_of(run) == []
    assert SyncRun.objects.get(trigger="retry").outcomes.exists()  # the retry is young


def test_a_failed_runs_stored_batch_goes_with_age_an_unfinished_ones_stays(world: World) -> None:
    failed, _ = sync_run_create(clinic=world.a.clinic, body=batch(owner()), trigger="agent")
    SyncRun.objects.filter(pk=failed.pk).update(status=SyncRun.Status.FAILED, problem="internal")
    young_failed, _ = sync_run_create(clinic=world.a.clinic, body=batch(owner()), trigger="agent")
    SyncRun.objects.filter(pk=young_failed.pk).update(status=SyncRun.Status.FAILED)
    queued, _ = sync_run_create(clinic=world.a.clinic, body=batch(owner("C-9")), trigger="agent")
    age(failed, 120)
    age(queued, 120)

    report = retention_prune()

    assert report.batches == 1
    assert set(SyncRunPayload.objects.values_list("run_id", flat=True)) == {
        young_failed.pk,
        queued.pk,
    }
    page = login(world.a.staff).get(failed.get_absolute_url()).content.decode()
    assert 'data-testid="run-batch-pruned"' in page and "cannot be resumed" in page
    assert "Resume from client record" not in page and "Pull from ezyVet again" not in page
    response = login(world.a.staff).post(reverse("records:run-resume", args=["alder", failed.pk]))
    assert response.status_code == 302
    assert SyncRun.objects.get(pk=failed.pk).status == SyncRun.Status.FAILED
    # The audit trail says what happened: asked, and refused, not "resumed".
    from clinics.models import AuditEvent

    actions = AuditEvent.objects.filter(object_id=str(failed.pk), action__startswith="sync.run_")
    assert list(actions.values_list("action", flat=True)) == ["sync.run_resume_refused"]


def test_the_page_of_a_pruned_run_says_its_outcomes_were_removed(world: World) -> None:
    run = age(ingest(world.a.clinic, batch(owner(), owner("C-2", patients=[]))), days=91)
    retention_prune()

    staff = login(world.a.staff)
    page = staff.get(run.get_absolute_url()).content.decode()
    assert 'data-testid="count-created-total">3<' in page  # the summary stays
    assert 'data-testid="outcomes-pruned"' in page
    assert "Per-record outcomes are kept for 90 days: this run" in page
    assert "No records with this outcome" not in page and "Download the report" not in page
    listing = staff.get(reverse("records:run-list", args=["alder"])).content.decode()
    assert 'data-testid="run-records">2 <span class="muted">/</span> 1<' in listing
    # The client's own page still says where it came from.
    client = Client.objects.get(pims_id="C-1")
    client_url = reverse("records:client-detail", args=["alder", client.pk])
    client_page = staff.get(client_url).content.decode()
    assert "Copied from the PIMS (new client, PIMS id C-1)" in client_page


def test_deletes_are_bounded_batches_each_its_own_statement(world: World) -> None:
    run = age(ingest(world.a.clinic, batch(*(owner(f"C-{n}", patients=[]) for n in range(7)))), 91)

    with CaptureQueriesContext(connection) as queries:
        report = retention_prune(batch_rows=2)

    deletes = [
        q["sql"] for q in queries if q["sql"].startswith('DELETE FROM "records_syncrecordoutcome"')
    ]
    assert len(deletes) >= 4 and all("LIMIT 2" in sql for sql in deletes)
    assert report.outcomes == 7 and outcomes_of(run) == []


def test_a_tick_out_of_time_is_resumed_by_the_next(world: World, monkeypatch) -> None:
    run = age(ingest(world.a.clinic, batch(*(owner(f"C-{n}", patients=[]) for n in range(9)))), 91)
    clock = itertools.count()  # every look at the clock is a second later
    monkeypatch.setattr("records.retention.time.monotonic", lambda: float(next(clock)))

    first = retention_prune(batch_rows=2, seconds=4)

    assert not first.finished and 0 < first.outcomes < 9
    assert SyncRun.objects.get(pk=run.pk).pruned_at is None  # not marked: work is left
    while not retention_prune(batch_rows=2, seconds=4).finished:
        pass
    assert outcomes_of(run) == [] and SyncRun.objects.get(pk=run.pk).pruned_at is not None


def test_old_matcher_fits_go_but_each_clinics_latest_stays(world: World) -> None:
    now = timezone.now()

    def fit(clinic, days: int) -> MatchModelFit:
        return MatchModelFit.objects.create(
            clinic=clinic, version="v1", m=[[0.5, 0.5]], pairs=10, own_share=0.5,
            created_at=now - dt.timedelta(days=days),
        )  # fmt: skip

    old, older, young = fit(world.a.clinic, 100), fit(world.a.clinic, 200), fit(world.a.clinic, 1)
    alone = fit(world.b.clinic, 300)  # Birch's only fit: its share of the prior

    assert retention_prune().fits == 2
    assert set(MatchModelFit.objects.values_list("pk", flat=True)) == {young.pk, alone.pk}
    assert {old.pk, older.pk}.isdisjoint(MatchModelFit.objects.values_list("pk", flat=True))


@pytest.mark.django_db
def test_expired_sessions_go_live_ones_stay() -> None:
    live, expired = SessionStore(), SessionStore()
    live.create()
    expired.create()
    Session.objects.filter(pk=expired.session_key).update(
        expire_date=timezone.now() - dt.timedelta(days=1)
    )
    assert sessions_expired_delete(batch_rows=1) == 1
    assert list(Session.objects.values_list("pk", flat=True)) == [live.session_key]


def test_the_beat_task_prunes_the_history_then_expired_sessions(world: World) -> None:
    run = age(ingest(world.a.clinic, batch(owner())), days=91)
    expired = SessionStore()
    expired.create()
    Session.objects.filter(pk=expired.session_key).update(
        expire_date=timezone.now() - dt.timedelta(days=1)
    )

    retention_prune_task()

    assert outcomes_of(run) == []
    assert not Session.objects.filter(pk=expired.session_key).exists()
