"""Sync runs: one batch from a PIMS, what it did to each record, and the per-clinic lock."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from clinics.models import Clinic
from clinics.problems import Problem, problem_for
from records.models.people import Client, Patient


@dataclass(frozen=True)
class CountRow:
    """A run's count of one outcome, clients and pets apart."""

    key: str
    label: str
    clients: int | None
    pets: int | None
    total: int


class SyncRunQuerySet(models.QuerySet["SyncRun"]):
    def for_clinic(self, clinic: Clinic) -> SyncRunQuerySet:
        return self.filter(clinic=clinic)


class SyncRun(models.Model):
    """One batch from a PIMS (an agent's post, a file, an ezyVet pull) and what it did."""

    class Status(models.TextChoices):
        FETCHING = "fetching", "Fetching from the PIMS"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Finished"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        AGENT = "agent", "Agent upload"
        COMMAND = "command", "File (ingest_batch)"
        PULL = "pull", "ezyVet pull"
        RETRY = "retry", "Retry of quarantined records"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="sync_runs")
    source = models.CharField(max_length=20)
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    batch_id = models.CharField(max_length=100)
    full = models.BooleanField(default=False, help_text="A full extract (first copy).")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    total = models.PositiveIntegerField(default=0, help_text="Client entries in the batch.")
    position = models.PositiveIntegerField(
        default=0, help_text="Client entries applied so far; a resumed run starts here."
    )
    counts = models.JSONField(default=dict, blank=True)
    kind_counts = models.JSONField(
        default=dict,
        blank=True,
        help_text='Counts by kind and outcome ("client.created", "patient.created", …).',
    )
    match_plan = models.JSONField(
        null=True,
        blank=True,
        editable=False,
        help_text="Merge verdicts computed once at the start, so a resumed run decides the same.",
    )
    pims_watermark = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="ezyVet pulls: the integration's watermark once this run has committed.",
    )
    error = models.TextField(blank=True, help_text="The technical detail of a failure.")
    problem = models.CharField(
        max_length=20,
        blank=True,
        help_text="A failed run's kind of problem (clinics.problems.ProblemKind): what staff read.",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    pruned_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When retention removed the run's per-record outcomes and stored batch "
        "(its summary and counts stay).",
    )

    objects = SyncRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "batch_id"], name="sync_run_unique_batch")
        ]
        indexes = [
            models.Index(fields=["clinic", "created_at"]),
            # Retention walks the runs it has not pruned yet, oldest first (id breaks ties, so
            # a pass reads only the runs it takes): only those are in this index, however
            # many runs the years keep.
            models.Index(
                fields=["created_at", "id"],
                condition=models.Q(pruned_at__isnull=True),
                name="sync_run_unpruned",
            ),
            # The onboarding team's health page: each clinic's failed runs of the last week,
            # without reading its hundreds of succeeded ones.
            models.Index(
                fields=["clinic", "created_at"],
                condition=models.Q(status="failed"),
                name="sync_run_failed",
            ),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} ({self.batch_id})"

    def get_absolute_url(self) -> str:
        return reverse(
            "records:run-detail", kwargs={"clinic_slug": self.clinic.slug, "run_id": self.pk}
        )

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.SUCCEEDED, self.Status.FAILED}

    @property
    def review_count(self) -> int:
        """Records held for staff: manual updates and possible matches."""
        return int(self.counts.get("manual_update", 0)) + int(self.counts.get("possible_match", 0))

    @property
    def count_rows(self) -> list[CountRow]:
        """One row per outcome with its clients and pets apart (runs from before the split
        have totals only: ``clients`` and ``pets`` are None)."""
        split = bool(self.kind_counts) or not self.counts
        by_kind = self.kind_counts
        return [
            CountRow(
                key=value,
                label=label,
                clients=int(by_kind.get(f"client.{value}", 0)) if split else None,
                pets=int(by_kind.get(f"patient.{value}", 0)) if split else None,
                total=int(self.counts.get(value, 0)),
            )
            for value, label in Outcome.choices
        ]

    @property
    def count_totals(self) -> CountRow:
        rows = self.count_rows
        split = rows[0].clients is not None
        return CountRow(
            key="all",
            label="All outcomes",
            clients=sum(r.clients or 0 for r in rows) if split else None,
            pets=sum(r.pets or 0 for r in rows) if split else None,
            total=sum(r.total for r in rows),
        )

    @property
    def counts_by_outcome(self) -> dict[str, CountRow]:
        rows = {row.key: row for row in self.count_rows}
        rows["review"] = CountRow(
            key="review",
            label="For review",
            clients=None
            if rows["merged"].clients is None
            else (rows["manual_update"].clients or 0) + (rows["possible_match"].clients or 0),
            pets=None
            if rows["merged"].pets is None
            else (rows["manual_update"].pets or 0) + (rows["possible_match"].pets or 0),
            total=rows["manual_update"].total + rows["possible_match"].total,
        )
        rows["all"] = self.count_totals
        return rows

    @property
    def problem_words(self) -> Problem | None:
        """Why a failed run stopped, in words for clinic staff."""
        return problem_for(self.problem) if self.status == self.Status.FAILED else None

    @property
    def failed_fetching(self) -> bool:
        """A pull that failed before its records were stored: resuming it pulls again."""
        return (
            self.status == self.Status.FAILED
            and self.trigger == self.Trigger.PULL
            and self.pruned_at is None
            and not SyncRunPayload.objects.filter(run_id=self.pk).exists()
        )

    @property
    def percent(self) -> int:
        if not self.total:
            return 100 if self.is_finished else 0
        return int(100 * self.position / self.total)


class SyncRunPayload(models.Model):
    """The batch as received, kept until the run has applied it (so a run can resume); a
    failed run's is removed by retention once the run is older than the retention age."""

    run = models.OneToOneField(SyncRun, on_delete=models.CASCADE, related_name="payload")
    body = models.TextField()

    def __str__(self) -> str:
        return f"Batch of run {self.run_id}"


class Outcome(models.TextChoices):
    CREATED = "created", "Created"
    UPDATED = "updated", "Updated"
    MERGED = "merged", "Merged"
    POSSIBLE_MATCH = "possible_match", "Possible match"
    MANUAL_UPDATE = "manual_update", "Held for review"
    UNCHANGED = "unchanged", "Unchanged"
    QUARANTINED = "quarantined", "Quarantined"


class SyncRecordOutcome(models.Model):
    """What one run did to one PIMS record (the rows of ``sync_report``)."""

    class Kind(models.TextChoices):
        CLIENT = "client", "Client"
        # "patient" is the report's value (PIMS.md); pages say "pet", as everywhere else.
        PATIENT = "patient", "Pet"

    # The table takes a row per record per run (250,000 for a big first copy), written only
    # by the engine with the ids it has just inserted. So every index counts (the run's is
    # the (run, outcome) one), and its references are not checked by the database: a
    # foreign-key check per row, at commit, cost more than the insert itself. Django still
    # applies ``on_delete`` when a run, client or pet is deleted.
    run = models.ForeignKey(
        SyncRun,
        on_delete=models.CASCADE,
        related_name="outcomes",
        db_index=False,
        db_constraint=False,
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    pims_id = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    client = models.ForeignKey(
        Client,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
    )
    patient = models.ForeignKey(
        Patient,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
    )
    customer_ref = models.CharField(max_length=64, blank=True)
    detail = models.TextField(blank=True)
    # A merge or a possible match: the match probability and each field's weight, in words.
    score = models.FloatField(null=True, blank=True)
    evidence = models.TextField(blank=True)
    raw = models.JSONField(
        null=True, blank=True, help_text="The client entry as received, for a quarantined record."
    )
    retried_in = models.ForeignKey(
        SyncRun,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="retries_of",
        db_index=False,
    )

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["run", "outcome"]),
            # Quarantined rows are rare: retention finds the retried ones of pruned runs here
            # without walking the table.
            models.Index(
                fields=["run"],
                condition=models.Q(outcome="quarantined"),
                name="sync_outcome_quarantined",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.pims_id}: {self.outcome}"

    @property
    def owner_in_batch(self) -> str:
        """A quarantined pet's owner as its batch entry names them ("C-3, Lee Ash"): a PIMS
        finds a pet through its client. Empty for anything else, or when the entry says no
        more (the entry is as received: any member may be of any type)."""
        if self.kind != self.Kind.PATIENT or not isinstance(self.raw, dict):
            return ""
        pims_id, first, last = (
            value.strip() if isinstance(value, str) else ""
            for value in (self.raw.get(key) for key in ("pims_id", "first_name", "last_name"))
        )
        name = " ".join(part for part in (first, last) if part)
        return ", ".join(part for part in (pims_id, name) if part)[:200]


class SyncLock(models.Model):
    """One sync at a time per clinic. A lease, so a crashed worker does not hold it forever."""

    clinic = models.OneToOneField(Clinic, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(SyncRun, on_delete=models.SET_NULL, null=True, blank=True)
    owner = models.CharField(max_length=32, blank=True, help_text="The worker holding the lease.")
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Sync lock of clinic {self.clinic_id} (run {self.run_id or 'none'})"
