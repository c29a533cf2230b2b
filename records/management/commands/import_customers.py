"""manage.py import_customers <clinic-slug> <file.csv>: the store's existing customers."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clinics.models import Clinic
from records.services import CUSTOMER_COLUMNS, customers_import


class Command(BaseCommand):
    help = "Import a clinic's home-delivery customers (PIMS.md CSV) for PIMS clients to merge into."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("clinic_slug")
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, clinic_slug: str, file: Path, **options: Any) -> None:
        clinic = Clinic.objects.filter(slug=clinic_slug).first()
        if clinic is None:
            raise CommandError(f"No clinic with slug {clinic_slug!r}.")
        try:
            with file.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                missing = {"customer_ref"} - set(reader.fieldnames or [])
                if missing:
                    raise CommandError(
                        f"{file} has no customer_ref column. "
                        f"Columns: {', '.join(CUSTOMER_COLUMNS)}."
                    )
                result = customers_import(clinic=clinic, rows=reader)
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}.") from exc
        for line, message in result.errors:
            self.stderr.write(f"line {line}: {message}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{clinic.name}: {result.created} created, {result.updated} updated, "
                f"{result.unchanged} unchanged, {result.pets_created} pets added, "
                f"{result.possible_matches} possible matches with PIMS clients for staff, "
                f"{len(result.errors)} rows with errors (not imported)."
            )
        )
