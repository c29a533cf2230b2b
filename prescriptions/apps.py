from __future__ import annotations

from django.apps import AppConfig


class PrescriptionsConfig(AppConfig):
    name = "prescriptions"
    verbose_name = "Prescriptions and orders"

    def ready(self) -> None:
        # records calls these inside its own transactions, without importing this app.
        from prescriptions import care, panels, services
        from records import hooks
        from records.panels import register_client_panel, register_patient_panel

        hooks.on_patients_deceased(services.patients_deceased_hold)
        hooks.on_patient_renamed(services.patient_renamed_represcribe)
        register_client_panel(panels.client_prescriptions_panel)
        register_patient_panel(panels.patient_prescriptions_panel)
        care.care_lookups_register()
