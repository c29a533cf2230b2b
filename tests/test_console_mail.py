"""The demo's console email is readable, not quoted-printable; a worker reports at once."""

from __future__ import annotations

import io

from celery.signals import worker_ready
from django.core.cache import cache
from django.core.mail import EmailMessage

from clinics.tasks import WORKER_HEARTBEAT_KEY
from vetsync.mail.console import EmailBackend


def test_console_email_is_printed_decoded() -> None:
    stream = io.StringIO()
    body = "Hello Joseph,\n\n" + "Gabapentin 100 mg capsules for Daisy " * 3 + "\n— Maple Grove"
    EmailBackend(stream=stream).send_messages(
        [EmailMessage("Your request — Daisy", body, "a@example.org", ["b@example.org"])]
    )
    out = stream.getvalue()
    assert "Subject: Your request — Daisy" in out
    assert "Gabapentin 100 mg capsules for Daisy Gabapentin" in out
    assert "— Maple Grove" in out
    assert "=E2=80=94" not in out and "=\n" not in out


def test_a_worker_reports_its_heartbeat_as_it_starts() -> None:
    cache.delete(WORKER_HEARTBEAT_KEY)
    worker_ready.send(sender=None)
    assert cache.get(WORKER_HEARTBEAT_KEY)
