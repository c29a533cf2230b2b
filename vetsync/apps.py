"""The project package as a Django app, for one thing: loading the Celery app with Django."""

from __future__ import annotations

from django.apps import AppConfig


class VetSyncConfig(AppConfig):
    name = "vetsync"
    verbose_name = "VetSync"

    def ready(self) -> None:
        # Celery's Django guide imports the app in vetsync/__init__.py; here instead, so that
        # vetsync.pims imports without Celery or Django (the clinic-side agent runs it alone).
        # Loaded with Django, ``shared_task`` binds to it in the web process, the tests and the
        # worker (``celery -A vetsync`` finds vetsync.celery itself).
        import vetsync.celery  # noqa: F401
