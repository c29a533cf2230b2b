"""Merges: a PIMS record joined to a home-delivery customer, and pairs staff kept apart."""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from clinics.models import Clinic
from records.models.people import Client
from records.models.runs import SyncRun


class MatchRejection(models.Model):
    """Staff said this customer and this PIMS client are different people: never suggest again."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="+")
    pims_id = models.CharField(max_length=64)
    rejected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "pims_id"], name="match_rejection_unique_pair"
            )
        ]

    def __str__(self) -> str:
        return f"{self.customer} is not PIMS client {self.pims_id}"


class ClientMerge(models.Model):
    """The story of one merge: which PIMS record joined which customer, how, and what was there.

    ``snapshot`` keeps the customer (and, for a confirmed possible match, the PIMS copy) as they
    were, so a wrong merge can be undone exactly.
    """

    class Method(models.TextChoices):
        RULE = "rule", "Automatically (strong evidence)"
        STAFF = "staff", "Confirmed by staff"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="merges")
    pims_id = models.CharField(max_length=64)
    method = models.CharField(max_length=10, choices=Method.choices)
    rule = models.CharField(max_length=200, blank=True, help_text="The evidence that matched.")
    run = models.ForeignKey(
        SyncRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="merges"
    )
    merged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    snapshot = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    evidence = models.JSONField(
        default=dict,
        blank=True,
        help_text="What made the merge: the match probability, each field's weight, the model "
        "version and the thresholds. Empty for merges made before evidence was recorded.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.pims_id} → {self.customer}"


class MatchModelFit(models.Model):
    """The m probabilities the matcher estimated on one clinic's data (one row per sync that
    matched). Pooled across clinics they are the prior a small clinic starts from; no record
    of any person is kept here, only the model's numbers."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    version = models.CharField(max_length=20)
    m = models.JSONField(help_text="Per field, the probability of each comparison level.")
    pairs = models.PositiveIntegerField(help_text="Candidate pairs EM learnt from.")
    own_share = models.FloatField(help_text="The weight of the clinic's data against the prior.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["version", "clinic", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.version} fit for clinic {self.clinic_id} ({self.pairs} pairs)"
