"""The onboarding paths as data, taken from the seeds the clinics are sent (shared/seeds/).

One path per connector; each step says who acts, when it is due (relative to another step,
only where the seeds give a time) and which email, if any, it sends. The data migration
loads it, and post_migrate adds any missing path again (a test-database flush empties the
table, as it does the team groups). Existing paths are never overwritten.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

FINAL_STEP: dict[str, Any] = {
    "key": "final-confirmation",
    "title": "Final confirmation email when we begin receiving data",
    "actor": "vetsync",
    "help_text": "Sent automatically to the primary contact by the first successful sync, once.",
    "email_template": "final_confirmation",
    "completes_on": "first_data",
}

PATHS: list[dict[str, Any]] = [
    {
        "connector": "syncvet",
        "name": "SyncVet: new installation",
        "summary": "The clinic schedules the installation of the SyncVet agent; SyncVet cannot "
        "connect or reconnect to the server without the technical contact.",
        "steps": [
            {
                "key": "invite-schedule",
                "title": "Invitation to schedule the SyncVet installation sent",
                "actor": "onboarding",
                "email_template": "syncvet_schedule_install",
            },
            {
                "key": "technical-contact",
                "title": "Technical contact recorded",
                "actor": "clinic",
                "help_text": "Required: SyncVet cannot connect or reconnect to the server "
                "without the technical contact person.",
                "requires_technical_contact": True,
            },
            {
                "key": "install-scheduled",
                "title": "SyncVet installation scheduled",
                "actor": "clinic",
            },
            {
                "key": "agent-installed",
                "title": "SyncVet agent installed with the technical contact",
                "actor": "syncvet",
                "help_text": "SyncVet installs with the technical contact: record the contact "
                "first.",
                "requires_technical_contact": True,
            },
        ],
    },
    {
        "connector": "vetsuccess",
        "name": "SyncVet already installed through VetSuccess",
        "summary": "SyncVet is already on the server through VetSuccess: VetSync requests "
        "access to the data from VetSuccess.",
        "steps": [
            {
                "key": "access-requested",
                "title": "Access to the data requested from VetSuccess",
                "actor": "onboarding",
            },
            {
                "key": "access-request-email",
                "title": "Email to the clinic confirming access was requested",
                "actor": "onboarding",
                "email_template": "vetsuccess_access_requested",
            },
            {
                "key": "access-granted",
                "title": "Access granted by VetSuccess",
                "actor": "vetsuccess",
            },
        ],
    },
    {
        "connector": "vetdata",
        "name": "VetData",
        "summary": "VetData installs the integration agent remotely at a time agreed on the "
        "onboarding call; VetData cannot connect to the server without the clinic's help.",
        "steps": [
            {
                "key": "call-scheduled",
                "title": "Onboarding call: VetData installation time scheduled",
                "actor": "onboarding",
                "email_template": "vetdata_install_scheduled",
            },
            {
                "key": "remote-access",
                "title": "Temporary remote access to the PIMS server given to VetData",
                "actor": "clinic",
            },
            {
                "key": "agent-installed",
                "title": "Integration agent installed by VetData",
                "actor": "vetdata",
            },
            {
                "key": "connection-closed",
                "title": "Remote connection to the server closed",
                "actor": "vetdata",
            },
        ],
    },
    {
        "connector": "datapoint",
        "name": "IDEXX DataPoint (Cornerstone two-way)",
        "summary": "Cornerstone two-way integration through IDEXX DataPoint's request queue; "
        "DataPoint cannot connect to the server without the technical contact.",
        "steps": [
            {
                "key": "cornerstone-prepared",
                "title": "Cornerstone prepared for two-way integration",
                "actor": "clinic",
            },
            {
                "key": "queued",
                "title": "Added to IDEXX DataPoint's integration request queue",
                "actor": "onboarding",
            },
            {
                "key": "queue-email",
                "title": "Email to the clinic confirming it was added to the queue",
                "actor": "onboarding",
                "email_template": "datapoint_queued",
            },
            {
                "key": "datapoint-email",
                "title": "DataPoint emailed the practice's primary contact",
                "actor": "idexx",
                "help_text": "From DataPoint's address, within 48 hours of queueing.",
                "depends_on": "queued",
                "due_after": timedelta(hours=48),
            },
            {
                "key": "practice-details",
                "title": "Practice details, technical contact and EULA completed",
                "actor": "clinic",
                "help_text": "The primary contact provides the practice's details, designates "
                "the technical contact and accepts DataPoint's EULA.",
                "requires_technical_contact": True,
            },
            {
                "key": "installed",
                "title": "DataPoint installed the agent with the technical contact",
                "actor": "idexx",
                "help_text": "Within 24 hours of the form and EULA.",
                "depends_on": "practice-details",
                "due_after": timedelta(hours=24),
            },
        ],
    },
    {
        "connector": "ezyvet",
        "name": "ezyVet (cloud API)",
        "summary": "The clinic downloads the API credentials file from ezyVet; VetSync stores "
        "it encrypted and connects.",
        "steps": [
            {
                "key": "credentials-uploaded",
                "title": "API credentials file uploaded",
                "actor": "clinic",
                "completes_on": "credentials_stored",
            },
            {
                "key": "receipt-confirmed",
                "title": "Receipt of the credentials confirmed to the clinic",
                "actor": "onboarding",
                "email_template": "ezyvet_credentials_received",
            },
            {
                "key": "database-connected",
                "title": "Database connected (ezyVet issued a token, every scope works)",
                "actor": "onboarding",
                "completes_on": "connection_ok",
            },
        ],
    },
]


def onboarding_paths_install(apps: Any, using: str = "default") -> int:
    """Create every path that does not exist yet, with its steps; returns how many.

    Takes an app registry so that the data migration can pass its historical models.
    """
    path_model = apps.get_model("clinics", "OnboardingPath")
    step_model = apps.get_model("clinics", "OnboardingStepTemplate")
    created = 0
    for spec in PATHS:
        if path_model.objects.using(using).filter(connector=spec["connector"]).exists():
            continue
        path = path_model.objects.using(using).create(
            connector=spec["connector"], name=spec["name"], summary=spec["summary"]
        )
        by_key: dict[str, Any] = {}
        for position, step in enumerate([*spec["steps"], FINAL_STEP], start=1):
            fields = {k: v for k, v in step.items() if k != "depends_on"}
            by_key[step["key"]] = step_model.objects.using(using).create(
                path=path,
                position=position,
                depends_on=by_key[step["depends_on"]] if "depends_on" in step else None,
                **fields,
            )
        created += 1
    return created
