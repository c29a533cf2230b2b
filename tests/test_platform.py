"""Health check, a real Celery worker on the configured broker, deploy checks, demo seed."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.cache import cache
from django.core.management import call_command
from django.urls import reverse

from clinics.models import Clinic, Membership
from clinics.tasks import WORKER_HEARTBEAT_KEY, record_worker_heartbeat_task
from records.models import Client
from vetsync.celery import app as celery_app

ROOT = Path(__file__).resolve().parent.parent


def test_healthz_answers_ok_when_database_and_broker_answer(client, db) -> None:
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"], body["broker"]) == ("ok", "ok", "ok")


def test_healthz_answers_503_when_the_broker_is_down(client, db, settings) -> None:
    original = celery_app.conf.broker_url
    celery_app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        response = client.get(reverse("healthz"))
    finally:
        celery_app.conf.broker_url = original
    assert response.status_code == 503
    assert response.json()["broker"].startswith("error")


@pytest.mark.django_db(transaction=True)
def test_a_task_sent_through_the_broker_is_run_by_a_real_worker() -> None:
    celery_app.conf.task_always_eager = False
    try:
        with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            result = record_worker_heartbeat_task.delay()
            # Polled rather than ``result.get()``: that waits on the result backend's pub/sub,
            # which an earlier in-process worker of the same test process can leave unheard.
            deadline = time.monotonic() + 30
            while not result.ready() and time.monotonic() < deadline:
                time.sleep(0.1)
            stamp = result.result
    finally:
        celery_app.conf.task_always_eager = True
    assert cache.get(WORKER_HEARTBEAT_KEY) == stamp


def test_check_deploy_is_clean_with_production_variables() -> None:
    unwanted = {"DEBUG", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in unwanted}
    env.update(
        SECRET_KEY="x" * 60 + "production-grade-secret-value",
        ALLOWED_HOSTS="vetsync.example",
        EMAIL_HOST="smtp.vetsync.example",
        DJANGO_SETTINGS_MODULE="vetsync.settings",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_settings_refuse_to_start_without_a_secret_key_unless_debug() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    env["DJANGO_SETTINGS_MODULE"] = "vetsync.settings"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Set SECRET_KEY" in result.stderr


def test_seed_demo_is_safe_to_run_twice(db) -> None:
    call_command("seed_demo", clients=20, stdout=io.StringIO())
    counts = (Clinic.objects.count(), Client.objects.count(), Membership.objects.count())
    call_command("seed_demo", clients=20, stdout=io.StringIO())
    assert (Clinic.objects.count(), Client.objects.count(), Membership.objects.count()) == counts
    # Maple Grove's first agent batch and store customers; Riverside's first ezyVet copy (500
    # clients) and its store customers, some merged into PIMS clients.
    assert counts[0] == 2 and counts[1] >= 20 + 500
    assert Client.objects.exclude(customer_ref="").exists()
