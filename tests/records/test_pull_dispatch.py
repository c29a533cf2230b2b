"""The pull schedule at fleet scale: due pulls taken in bounded batches under row locks, each
clinic's slot spread over its interval, a failing site backed off (and its clinic told once
per failing spell) without holding up the others; against the multi-site emulator."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from django.core import mail
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clinics.models import Clinic, Integration
from clinics.sync_health import pull_backoff, pull_slot_next, pull_slot_offset
from records.models import Client, SyncRun
from records.pulls import ezyvet_pull_run, ezyvet_pull_start, ezyvet_pulls_dispatch
from records.tasks import ezyvet_pulls_due_task
from tests.records.fleet import ezyvet_clinic, on_site, running_fleet
from vetsync.pims.emulator import FleetEmulator


@pytest.fixture
def fleet() -> Iterator[FleetEmulator]:
    with running_fleet(sites=3, clients=8, seed=4) as emulator:
        yield emulator


def test_due_pulls_are_taken_in_bounded_batches(db: None) -> None:
    due = [ezyvet_clinic(n) for n in range(1, 8)]
    later = ezyvet_clinic(8)
    Integration.objects.filter(pk=later.pk).update(
        next_pull_at=timezone.now() + dt.timedelta(minutes=30)
    )

    with CaptureQueriesContext(connection) as queries:
        first = ezyvet_pulls_dispatch(batch=3, limit=5)
    second = ezyvet_pulls_dispatch(batch=3, limit=5)
    third = ezyvet_pulls_dispatch(batch=3, limit=5)

    assert (len(first), len(second), len(third)) == (5, 2, 0)
    started = [run.clinic_id for run in first + second]
    assert sorted(started) == sorted(i.clinic_id for i in due)
    assert not SyncRun.objects.filter(clinic_id=later.clinic_id).exists()
    # Every look at the integrations table asks for one batch, never for all of them.
    selects = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT") and 'FROM "clinics_integration"' in q["sql"]
    ]
    batch_selects = [sql for sql in selects if '"next_pull_at" IS NULL' in sql]
    assert len(batch_selects) == 2  # 3 + 2 rows
    assert all(re.search(r"LIMIT [23]\b", sql) for sql in batch_selects), batch_selects


def test_each_clinics_slot_is_its_own_and_an_hours_pulls_spread_evenly(db: None) -> None:
    integrations = [ezyvet_clinic(n) for n in range(1, 61)]
    start = timezone.now()

    runs = ezyvet_pulls_dispatch(now=start)

    assert len(runs) == 60
    minutes = Counter()
    for integration in Integration.objects.filter(pk__in=[i.pk for i in integrations]):
        assert integration.next_pull_at is not None
        ahead = integration.next_pull_at - start
        assert dt.timedelta(0) < ahead <= dt.timedelta(hours=1)
        # A clinic's slot is stable: the same offset within every interval.
        again = pull_slot_next(
            clinic_id=integration.clinic_id,
            interval=integration.sync_interval,
            after=integration.next_pull_at,
        )
        assert again - integration.next_pull_at == dt.timedelta(hours=1)
        minutes[int(integration.next_pull_at.timestamp()) % 3600 // 600] += 1
    # Sixty hourly clinics: about ten in every ten minutes, none of the six bins crowded.
    assert sorted(minutes) == [0, 1, 2, 3, 4, 5]
    assert max(minutes.values()) <= 12 and min(minutes.values()) >= 8


def alerts() -> list[mail.EmailMessage]:
    return [m for m in mail.outbox if "cannot sync with your practice system" in m.subject]


def test_a_failing_site_backs_off_longer_each_time_and_recovers(
    db: None, fleet: FleetEmulator, django_capture_on_commit_callbacks
) -> None:
    # Site 1's address with site 2's credentials: ezyVet refuses them, every time.
    integration = on_site(ezyvet_clinic(1), fleet, 2)
    Integration.objects.filter(pk=integration.pk).update(base_url=fleet.site_url(1))
    Clinic.objects.filter(pk=integration.clinic_id).update(email="desk@fleet-1.example")
    delays = []
    for _ in range(4):
        with django_capture_on_commit_callbacks(execute=True):
            run, _ = ezyvet_pull_start(integration=integration)
            failed = ezyvet_pull_run(run_id=run.pk)
        assert failed.status == SyncRun.Status.FAILED and failed.finished_at is not None
        integration.refresh_from_db()
        delays.append(integration.next_pull_at - failed.finished_at)

    assert integration.is_failing and integration.failures == 4
    assert [round(d / dt.timedelta(minutes=1)) for d in delays] == [5, 10, 20, 40]
    # Told once, at the third failure in a row: the clinic and the onboarding team.
    assert len(alerts()) == 1
    assert set(alerts()[0].to) == {"desk@fleet-1.example", "onboarding@vetsync.local"}
    assert "Client authentication failed" in alerts()[0].body

    on_site(integration, fleet, 1)
    with django_capture_on_commit_callbacks(execute=True):
        run, _ = ezyvet_pull_start(integration=integration)
        assert ezyvet_pull_run(run_id=run.pk).status == SyncRun.Status.SUCCEEDED
    integration.refresh_from_db()
    assert not integration.is_failing and integration.failures == 0
    assert integration.failure_alerted_at is None
    # Back on its slot (its offset in the hour), not on a back-off.
    offset = pull_slot_offset(clinic_id=integration.clinic_id, interval=integration.sync_interval)
    assert integration.next_pull_at.timestamp() % 3600 == offset.total_seconds()

    # A new failing spell is a new incident: one more email once it lasts.
    Integration.objects.filter(pk=integration.pk).update(base_url=fleet.site_url(3))
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            run, _ = ezyvet_pull_start(integration=integration)
            ezyvet_pull_run(run_id=run.pk)
    assert len(alerts()) == 2


def test_back_off_grows_to_its_ceiling(settings) -> None:
    settings.EZYVET_BACKOFF_FIRST = dt.timedelta(minutes=5)
    settings.EZYVET_BACKOFF_MAX = dt.timedelta(hours=6)

    delays = [pull_backoff(failures=n) for n in range(1, 10)]

    assert delays[:4] == [dt.timedelta(minutes=m) for m in (5, 10, 20, 40)]
    assert delays == sorted(delays)
    assert delays[-1] == dt.timedelta(hours=6)


def test_a_failing_site_does_not_hold_up_the_others(
    db: None, fleet: FleetEmulator, django_capture_on_commit_callbacks
) -> None:
    integrations = [on_site(ezyvet_clinic(n), fleet, n) for n in (1, 2, 3)]
    fleet.site(2).inject_fault("server_error", status=503, for_seconds=600)

    with django_capture_on_commit_callbacks(execute=True):
        ezyvet_pulls_due_task()

    runs = {run.clinic_id: run for run in SyncRun.objects.all()}
    ok = [integrations[0], integrations[2]]
    for integration in ok:
        assert runs[integration.clinic_id].status == SyncRun.Status.SUCCEEDED
        assert Client.objects.filter(clinic_id=integration.clinic_id).count() >= 8
    assert runs[integrations[1].clinic_id].status == SyncRun.Status.FAILED

    # An hour on, the healthy clinics are due again; the failing one was retried and keeps
    # backing off on its own.
    for integration in integrations:
        integration.refresh_from_db()
    later = max(i.next_pull_at for i in ok) + dt.timedelta(seconds=1)
    Integration.objects.filter(pk=integrations[1].pk).update(next_pull_at=later)
    fleet.site(2).inject_fault("server_error", status=503, for_seconds=600)
    with django_capture_on_commit_callbacks(execute=True):
        again = ezyvet_pulls_dispatch(now=later)
    assert {run.clinic_id for run in again} == {i.clinic_id for i in integrations}


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_never_take_the_same_clinic() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks (SKIP LOCKED) are PostgreSQL's; SQLite dispatchers take turns")
    for n in range(1, 41):
        ezyvet_clinic(n)
    barrier = threading.Barrier(2)
    taken: dict[str, list[int]] = {}

    def dispatcher(name: str) -> None:
        try:
            barrier.wait()
            taken[name] = [run.clinic_id for run in ezyvet_pulls_dispatch(batch=4)]
        finally:
            connections.close_all()

    threads = [threading.Thread(target=dispatcher, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    both = taken["a"] + taken["b"]
    assert len(both) == 40 and len(set(both)) == 40
    per_clinic = Counter(SyncRun.objects.values_list("clinic_id", flat=True))
    assert set(per_clinic.values()) == {1}
