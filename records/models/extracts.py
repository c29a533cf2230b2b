"""A full extract sent in several batches (PIMS.md, "Agent batches"): which parts have arrived.

Each part is its own sync run; the extract is complete when every part has arrived.
"""

from __future__ import annotations

from django.db import models

from clinics.models import Clinic
from records.models.runs import SyncRun


class FullExtract(models.Model):
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="full_extracts")
    extract_id = models.CharField(max_length=100)
    parts = models.PositiveIntegerField()
    arrived = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["clinic", "extract_id"], name="full_extract_unique_id"),
            models.CheckConstraint(
                condition=models.Q(arrived__lte=models.F("parts")),
                name="full_extract_arrived_at_most_parts",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.extract_id}: {self.arrived} of {self.parts} parts"

    @property
    def is_complete(self) -> bool:
        return self.completed_at is not None


class FullExtractPart(models.Model):
    extract = models.ForeignKey(FullExtract, on_delete=models.CASCADE, related_name="part_runs")
    part = models.PositiveIntegerField()
    run = models.OneToOneField(SyncRun, on_delete=models.CASCADE, related_name="extract_part")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["extract", "part"], name="full_extract_part_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.extract.extract_id} part {self.part}"
