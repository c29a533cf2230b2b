"""Manual updates: changes from the PIMS held for staff, and possible matches to decide."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone

from clinics.models import Clinic
from records.models.people import Client, Patient
from records.models.runs import SyncRun

FIELD_LABELS = {
    "first_name": "First name",
    "last_name": "Last name",
    "line1": "Address line 1",
    "line2": "Address line 2",
    "city": "City",
    "state": "State",
    "postcode": "Postcode",
    "country": "Country",
    "name": "Pet name",
}


class ManualUpdateQuerySet(models.QuerySet["ManualUpdate"]):
    def for_clinic(self, clinic: Clinic) -> ManualUpdateQuerySet:
        return self.filter(clinic=clinic)

    def pending(self) -> ManualUpdateQuerySet:
        return self.filter(status=ManualUpdate.Status.PENDING)


class ManualUpdate(models.Model):
    """A change from the PIMS held for staff, or a possible match to confirm or reject."""

    class Kind(models.TextChoices):
        CLIENT_NAME = "client_name", "Client name"
        CLIENT_ADDRESS = "client_address", "Client address"
        PET_NAME = "pet_name", "Pet name"
        POSSIBLE_MATCH = "possible_match", "Possible match"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        DISMISSED = "dismissed", "Dismissed"
        MERGED = "merged", "Merged"
        REJECTED = "rejected", "Kept separate"
        SUPERSEDED = "superseded", "No longer needed"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="manual_updates")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    client = models.ForeignKey(
        Client,
        on_delete=models.CASCADE,
        related_name="manual_updates",
        help_text="The pharmacy's client (for a possible match: the home-delivery customer).",
    )
    patient = models.ForeignKey(
        Patient, on_delete=models.CASCADE, null=True, blank=True, related_name="manual_updates"
    )
    candidate = models.ForeignKey(
        Client,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="match_suggestions",
        help_text="Possible match only: the client copied from the PIMS.",
    )
    current = models.JSONField(
        default=dict, encoder=DjangoJSONEncoder, help_text="The pharmacy's value when raised."
    )
    proposed = models.JSONField(
        default=dict, encoder=DjangoJSONEncoder, help_text="The PIMS's value."
    )
    detail = models.CharField(max_length=300, blank=True)
    run = models.ForeignKey(
        SyncRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="manual_updates"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolution_note = models.CharField(max_length=500, blank=True)

    objects = ManualUpdateQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["clinic", "status", "kind"]),
            # The client list's "waiting for staff" and "possible duplicate" filters.
            models.Index(
                fields=["client", "candidate"],
                condition=Q(status="pending"),
                name="manual_update_pending_clients",
            ),
        ]
        constraints = [
            # One pending update per thing: a newer PIMS value replaces the proposal in place.
            models.UniqueConstraint(
                fields=["client", "kind"],
                condition=Q(status="pending", patient__isnull=True, candidate__isnull=True),
                name="manual_update_one_pending_per_client_kind",
            ),
            models.UniqueConstraint(
                fields=["patient", "kind"],
                condition=Q(status="pending", patient__isnull=False),
                name="manual_update_one_pending_per_patient_kind",
            ),
            models.UniqueConstraint(
                fields=["client", "candidate"],
                condition=Q(status="pending", candidate__isnull=False),
                name="manual_update_one_pending_per_match",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.client}"

    def rows(self) -> list[tuple[str, str, Any, Any]]:
        """(key, label, pharmacy's value, PIMS's value) for each field of the update."""
        return [
            (
                key,
                FIELD_LABELS.get(key, key.replace("_", " ").capitalize()),
                self.current.get(key, ""),
                value,
            )
            for key, value in self.proposed.items()
        ]
