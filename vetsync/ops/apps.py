from __future__ import annotations

from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "vetsync.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from vetsync.ops import events

        events.connect()
