"""Every CSV export neutralises spreadsheet formulas (OWASP "CSV Injection"): a PIMS value
such as ``=HYPERLINK(...)`` must open as text, not run."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from records.models import Outcome, SyncRecordOutcome
from tests.conftest import World, login
from tests.records.batches import batch, ingest, owner, pet
from vetsync.lib.csv_safe import neutralised

HOSTILE = ['=HYPERLINK("http://evil.example","x")', "@SUM(A1:A9)", "+1+1", "-2+3", "\tcmd", "\r=1"]


def hostile_run(world: World):
    run = ingest(
        world.a.clinic,
        batch(owner(HOSTILE[0], patients=[pet("@SUM(A1:A9)")])),
    )
    SyncRecordOutcome.objects.create(
        run=run,
        kind="client",
        pims_id="+1+1",
        outcome=Outcome.POSSIBLE_MATCH,
        customer_ref="-2+3",
        detail="\tcmd",
    )
    return run


def cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


def assert_neutralised(text: str) -> None:
    values = cells(text)
    for value in HOSTILE[:5]:
        assert value not in values, value
        assert "'" + value in values, value
    assert not any(v.startswith(("=", "+", "-", "@", "\t", "\r")) for v in values)


def test_the_sync_report_download_neutralises_formulas(world: World) -> None:
    run = hostile_run(world)
    response = login(world.a.staff).get(reverse("records:run-report", args=["alder", run.pk]))
    assert_neutralised(b"".join(response.streaming_content).decode())


def test_manage_py_sync_report_csv_neutralises_formulas(world: World) -> None:
    run = hostile_run(world)
    out = io.StringIO()
    call_command("sync_report", run.pk, "--format", "csv", stdout=out)
    assert_neutralised(out.getvalue())


@pytest.mark.parametrize(
    ("value", "expected"),
    [("=1", "'=1"), ("plain", "plain"), ("", ""), (5, 5), (None, None), ("a=b", "a=b")],
)
def test_only_text_starting_with_a_formula_prefix_changes(value: object, expected: object) -> None:
    assert neutralised(value) == expected
