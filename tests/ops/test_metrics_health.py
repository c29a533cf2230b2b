"""/metrics (Prometheus) behind its token, /healthz with beat and queues, and one structured
log line per sync run and per writeback attempt, seen the way an operator sees them."""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

import pytest
from django.core.cache import cache
from django.test import Client as HttpClient
from prometheus_client.parser import text_string_to_metric_families

from prescriptions.models import WritebackItem
from prescriptions.tasks import writeback_deliver_task
from tests.conftest import World
from tests.prescriptions.conftest import rx
from tests.records.batches import batch, owner, pet
from vetsync.ops.heartbeats import KEY, heartbeat_record
from vetsync.ops.tasks import queue_heartbeat_task

TOKEN = "metrics-test-token-0123456789"


@pytest.fixture(autouse=True)
def no_heartbeats(settings):
    """Each test starts and ends with no queue heartbeat in the cache."""
    keys = [KEY.format(queue=q) for q in settings.CELERY_QUEUES_ALL]
    cache.delete_many(keys)
    yield
    cache.delete_many(keys)


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_ADDRESSES = []
    return settings


def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = HttpClient().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}"])
def test_metrics_are_refused_without_their_token(db, metrics_on, header) -> None:
    headers = {"Authorization": header} if header else {}
    response = HttpClient().get("/metrics", headers=headers)
    assert response.status_code == 403
    assert b"vetsync_" not in response.content


def test_metrics_are_refused_when_neither_token_nor_addresses_are_configured(db, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_ADDRESSES = []
    response = HttpClient().get("/metrics", headers={"Authorization": "Bearer "})
    assert response.status_code == 403


def test_metrics_answer_an_allowed_address_without_a_token(db, settings) -> None:
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_ADDRESSES = ["10.0.0.0/8", "127.0.0.1"]
    assert HttpClient().get("/metrics").status_code == 200
    assert HttpClient(REMOTE_ADDR="192.168.1.9").get("/metrics").status_code == 403


def test_a_sync_run_is_one_log_line_and_counted(world: World, metrics_on, caplog) -> None:
    from clinics.services import integration_issue_agent_token

    token = integration_issue_agent_token(integration=world.a.clinic.integration)
    key = ("vetsync_sync_runs_total", (("outcome", "succeeded"), ("source", "syncvet")))
    applied = ("vetsync_sync_records_applied_total", (("source", "syncvet"),))
    before = scrape()
    with caplog.at_level(logging.INFO, logger="vetsync.events"):
        response = HttpClient().post(
            "/api/agent/v1/batches",
            data=batch(owner(), owner("C-2", patients=[pet("P-2")])),
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.content
    lines = [r.getMessage() for r in caplog.records if r.name == "vetsync.events"]
    assert len(lines) == 1
    assert lines[0].startswith("event=sync_run ")
    assert f"clinic={world.a.clinic.pk}" in lines[0] and "outcome=succeeded" in lines[0]
    assert "total=2" in lines[0]
    after = scrape()
    assert after[key] == before.get(key, 0) + 1
    assert after[applied] == before.get(applied, 0) + 2


def test_a_writeback_attempt_is_one_log_line_and_its_latency_is_measured(
    world: World, metrics_on, site, ezy_pet, catalogue, caplog
) -> None:
    prescription = rx(world.a, ezy_pet, catalogue.carprofen)  # its message waits for a commit
    row = WritebackItem.objects.get(prescription=prescription)
    delivered = ("vetsync_writeback_attempts_total", (("outcome", "delivered"),))
    latency = ("vetsync_writeback_commit_to_delivered_seconds_count", ())
    before = scrape()
    assert before[("vetsync_writeback_rows", (("status", "pending"),))] == 1
    with caplog.at_level(logging.INFO, logger="vetsync.events"):
        writeback_deliver_task.delay(row.pk)
    lines = [r.getMessage() for r in caplog.records if r.name == "vetsync.events"]
    assert len(lines) == 1
    assert lines[0].startswith("event=writeback_attempt ")
    assert f"item={row.pk}" in lines[0] and "outcome=delivered" in lines[0]
    assert "http_status=200" in lines[0] and "commit_to_delivered_s=" in lines[0]
    after = scrape()
    assert after[delivered] == before.get(delivered, 0) + 1
    assert after[latency] == before.get(latency, 0) + 1
    calls = ("vetsync_ezyvet_calls_total", (("site", urlsplit(site.base_url).netloc),))
    assert after[calls] > before.get(calls, 0)  # the POST, counted for the clinic's site
    assert after[("vetsync_writeback_rows", (("status", "delivered"),))] == 1
    assert after[("vetsync_writeback_rows", (("status", "pending"),))] == 0


def test_queue_and_beat_heartbeats_are_in_the_metrics(db, metrics_on, settings) -> None:
    assert scrape()[("vetsync_beat_heartbeat_age_seconds", ())] == -1
    queue_heartbeat_task.apply(args=("sync",))
    heartbeat_record("pull", now=time.time() - 100)
    samples = scrape()
    assert 0 <= samples[("vetsync_queue_heartbeat_age_seconds", (("queue", "sync"),))] < 5
    assert samples[("vetsync_queue_heartbeat_age_seconds", (("queue", "pull"),))] >= 100
    assert samples[("vetsync_queue_heartbeat_age_seconds", (("queue", "writeback"),))] == -1
    assert 0 <= samples[("vetsync_beat_heartbeat_age_seconds", ())] < 5
    for queue in settings.CELERY_QUEUES_ALL:
        assert samples[("vetsync_queue_depth", (("queue", queue),))] >= 0


def test_healthz_reports_database_broker_beat_and_each_queue(db, settings) -> None:
    first = HttpClient().get("/healthz")
    assert first.status_code == 200
    assert first.json()["beat"] == "not seen yet"
    for queue in settings.CELERY_QUEUES_ALL:
        queue_heartbeat_task.apply(args=(queue,))
    body = HttpClient().get("/healthz").json()
    assert body["beat"] == "ok"
    assert body["queues"] == dict.fromkeys(settings.CELERY_QUEUES_ALL, "ok")
    # The writeback worker stopped taking its queue's heartbeat five minutes ago.
    heartbeat_record("writeback", now=time.time() - 300)
    stale = HttpClient().get("/healthz")
    assert stale.status_code == 503
    assert stale.json()["queues"]["writeback"].startswith("stale")
    assert stale.json()["database"] == "ok" and stale.json()["beat"] == "ok"


def test_the_stalest_live_clinic_and_the_failing_count_are_in_the_metrics(db, metrics_on) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from clinics.models import Connector, Integration
    from tests.factories import IntegrationFactory

    now = timezone.now()
    live = Integration.Status.LIVE
    for minutes in (10, 70):  # two live ezyVet clinics: the stalest last synced 70 min ago
        IntegrationFactory(
            connector=Connector.EZYVET,
            status=live,
            last_successful_sync_at=now - timedelta(minutes=minutes),
        )
    IntegrationFactory(  # failing for two hours: counted as failing, not as stale
        connector=Connector.EZYVET,
        status=live,
        last_successful_sync_at=now - timedelta(hours=3),
        failing_since=now - timedelta(hours=2),
    )
    IntegrationFactory(  # paused: not expected to be fresh
        connector=Connector.EZYVET,
        status=Integration.Status.PAUSED,
        last_successful_sync_at=now - timedelta(days=2),
    )
    IntegrationFactory(
        connector=Connector.SYNCVET, status=live, last_successful_sync_at=now - timedelta(minutes=4)
    )
    samples = scrape()
    ezyvet = samples[("vetsync_sync_oldest_data_age_seconds", (("connector", "ezyvet"),))]
    agent = samples[("vetsync_sync_oldest_data_age_seconds", (("connector", "syncvet"),))]
    assert 70 * 60 <= ezyvet < 71 * 60
    assert 4 * 60 <= agent < 5 * 60
    assert samples[("vetsync_integrations_failing", ())] == 1
