"""manage.py sync_report <run-id> --format json|csv: what one run did to each record."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from records.models import SyncRun
from records.reports import REPORT_COLUMNS, report_rows
from vetsync.lib.csv_safe import formula_safe_writer


class Command(BaseCommand):
    help = "Print a sync run's per-record outcomes (PIMS.md, 'What each sync did')."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", type=int)
        parser.add_argument("--format", choices=["json", "csv"], default="csv")

    def handle(self, *args: Any, run_id: int, format: str, **options: Any) -> None:
        run = SyncRun.objects.filter(pk=run_id).first()
        if run is None:
            raise CommandError(f"No sync run {run_id}.")
        if run.pruned_at is not None:
            self.stderr.write(
                f"Run {run_id}'s per-record outcomes were removed on {run.pruned_at:%Y-%m-%d} "
                "(retention); only its counts, and any quarantined record still open, remain."
            )
        if format == "csv":
            writer = formula_safe_writer(self.stdout, lineterminator="\n")
            writer.writerow(REPORT_COLUMNS)
            for row in report_rows(run, as_lists=True):
                writer.writerow(row)
            return
        # One JSON document, written row by row so a 250,000-record run streams.
        self.stdout.write(
            json.dumps(
                {
                    "run_id": run.pk,
                    "batch_id": run.batch_id,
                    "status": run.status,
                    "counts": run.counts,
                }
            )[:-1]
            + ', "records": [',
            ending="",
        )
        for index, row in enumerate(report_rows(run)):
            self.stdout.write(("," if index else "") + "\n  " + json.dumps(row), ending="")
        self.stdout.write("\n]}")
