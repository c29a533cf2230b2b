"""The Celery app, wired as Celery's Django guide shows.

``task_cls`` is Celery's ``DjangoTask`` (so every task has ``delay_on_commit``), made to log
rather than raise when the broker is unreachable after a commit (``vetsync/lib/oncommit.py``);
all ``CELERY_*`` settings come from ``vetsync/settings.py``.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vetsync.settings")

app = Celery("vetsync", task_cls="vetsync.lib.oncommit:OnCommitTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
