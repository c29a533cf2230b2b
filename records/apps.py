from __future__ import annotations

from django.apps import AppConfig


class RecordsConfig(AppConfig):
    name = "records"
    verbose_name = "Clients and patients"

    def ready(self) -> None:
        from records import checks  # noqa: F401  (registers the database checks)
