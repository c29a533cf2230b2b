"""The Celery app, wired as Celery's Django guide shows.

``task_cls`` is Celery's ``DjangoTask`` (so every task has ``delay_on_commit``), made to log
rather than raise when the broker is unreachable after a commit (``vetsync/lib/oncommit.py``);
all ``CELERY_*`` settings come from ``vetsync/settings.py``.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vetsync.settings")

app = Celery("vetsync", task_cls="vetsync.lib.oncommit:OnCommitTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery's Django fixup closes every database connection before and after each task unless
# this (old-style) key is set: a new PostgreSQL backend (a fork, authentication, cold catalog
# caches) for every writeback, pull and apply. The workers keep theirs as the web processes
# do instead: ``close_old_connections`` around each task closes one older than CONN_MAX_AGE,
# or left unusable by an error.
app.conf["CELERY_DB_REUSE_MAX"] = 10**9
app.autodiscover_tasks()


@signals.task_prerun.connect(weak=False, dispatch_uid="db-prerun")
@signals.task_postrun.connect(weak=False, dispatch_uid="db-postrun")
def _close_old_connections(task: Any = None, **kwargs: object) -> None:
    if getattr(getattr(task, "request", None), "is_eager", False):
        return  # run in the caller's process and transaction (tests): not the worker's to close
    from django.db import close_old_connections

    close_old_connections()
