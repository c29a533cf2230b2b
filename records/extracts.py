"""Multi-part full extracts (PIMS.md, "Agent batches"): a first copy too large for one request
arrives as several batches, each ``"full": true`` with ``extract_id`` and ``part``/``parts``.
Each part is applied as its own run; the extract is complete when every part has arrived."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from clinics.models import Clinic
from records.models import FullExtract, FullExtractPart, SyncRun
from vetsync.lib import json_input
from vetsync.pims.agent import BatchError, BatchHeader, parse_header


def extract_header(body: str | bytes) -> BatchHeader | None:
    """The header of a batch that is one part of a multi-part extract, else None.

    Only such batches are read here (a byte search keeps the others from being parsed twice);
    a batch that cannot be read is left for the run's own checks to refuse with their reason.
    """
    needle = '"extract_id"' if isinstance(body, str) else b'"extract_id"'
    if needle not in body:  # type: ignore[operator]
        return None
    try:
        text = body if isinstance(body, str) else body.decode("utf-8")
        # The envelope only: the clients are not built as dicts here (bounded memory).
        header = parse_header(json_input.loads_envelope(text))
    except (ValueError, BatchError):
        return None
    return header if header.extract_id else None


def extract_part_check(*, clinic: Clinic, header: BatchHeader) -> None:
    """Refuse a part that contradicts what already arrived (``BatchError``, a 400): another
    number of parts for the same extract, or a part number already taken by another batch.
    A repeated batch (same ``batch_id``) is not checked: it is the usual no-op."""
    if SyncRun.objects.filter(clinic=clinic, batch_id=header.batch_id).exists():
        return
    extract = FullExtract.objects.filter(clinic=clinic, extract_id=header.extract_id).first()
    if extract is None:
        return
    if extract.parts != header.parts:
        raise BatchError(
            f"extract {header.extract_id} has {extract.parts} parts, not {header.parts}: "
            "send a new extract_id for a new extract."
        )
    taken = extract.part_runs.filter(part=header.part).select_related("run").first()
    if taken is not None:
        raise BatchError(
            f"part {header.part} of extract {header.extract_id} already arrived as batch "
            f"{taken.run.batch_id}."
        )


def extract_part_arrived(*, run: SyncRun, header: BatchHeader) -> FullExtract:
    """Note that a part arrived (again: a no-op) and complete the extract with its last part."""
    with transaction.atomic():
        extract, _ = FullExtract.objects.get_or_create(
            clinic_id=run.clinic_id, extract_id=header.extract_id, defaults={"parts": header.parts}
        )
        extract = FullExtract.objects.select_for_update().get(pk=extract.pk)
        try:
            with transaction.atomic():
                FullExtractPart.objects.get_or_create(
                    run=run, defaults={"extract": extract, "part": header.part}
                )
        except IntegrityError:
            pass  # the same part number arrived at the same moment under another batch id
        arrived = extract.part_runs.count()
        if arrived != extract.arrived:
            extract.arrived = arrived
            if arrived >= extract.parts and extract.completed_at is None:
                extract.completed_at = timezone.now()
            extract.save(update_fields=["arrived", "completed_at"])
    return extract
