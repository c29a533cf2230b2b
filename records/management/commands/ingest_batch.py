"""manage.py ingest_batch <clinic-slug> <file.json>: apply an agent batch file, with progress."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from clinics.models import Clinic
from records.models import Outcome, SyncRun
from records.sync import SyncBusy, sync_run_create, sync_run_process
from vetsync.pims.agent import BatchError


class Command(BaseCommand):
    help = "Apply an agent batch (PIMS.md format) to a clinic, as the agent API would."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("clinic_slug")
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--no-progress", action="store_true", help="Do not draw a progress bar."
        )

    def handle(self, *args: Any, clinic_slug: str, file: Path, **options: Any) -> None:
        clinic = Clinic.objects.filter(slug=clinic_slug).first()
        if clinic is None:
            raise CommandError(f"No clinic with slug {clinic_slug!r}.")
        try:
            body = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}.") from exc
        try:
            run, created = sync_run_create(
                clinic=clinic, body=body, trigger=SyncRun.Trigger.COMMAND
            )
        except BatchError as exc:
            raise CommandError(str(exc)) from exc
        if not created and run.is_finished:
            self.stdout.write(f"Batch {run.batch_id} was already applied as run {run.pk}: no-op.")
            self._summary(run)
            return
        bar = tqdm(
            total=run.total,
            initial=run.position,
            unit="client",
            disable=options["no_progress"],
            file=sys.stderr,
        )

        def progress(position: int, total: int) -> None:
            bar.update(position - bar.n)

        try:
            run = sync_run_process(run_id=run.pk, on_progress=progress)
        except SyncBusy as exc:
            raise CommandError(f"{exc} Run {run.pk} is queued; the worker will apply it.") from exc
        except Exception as exc:
            raise CommandError(
                f"Run {run.pk} stopped: {exc}. Run the command again to resume it."
            ) from exc
        finally:
            bar.close()
        self._summary(run)

    def _summary(self, run: SyncRun) -> None:
        counts = ", ".join(
            f"{label.lower()} {run.counts.get(value, 0)}" for value, label in Outcome.choices
        )
        self.stdout.write(
            self.style.SUCCESS(f"Run {run.pk} {run.get_status_display().lower()}: {counts}.")
        )
