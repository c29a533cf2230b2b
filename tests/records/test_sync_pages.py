"""Staff pages: the manual-update queue, sync runs, their report and retries."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.core.management import call_command
from django.urls import reverse

from clinics.models import AuditEvent
from records.models import Client, ManualUpdate, Patient, SyncRecordOutcome, SyncRun
from records.sync import sync_run_create
from tests.conftest import World, login
from tests.factories import ClientFactory
from tests.records.batches import batch, ingest, owner, pet

LATER = "2026-11-25T09:00:00Z"


def queue_url(world: World) -> str:
    return reverse("records:update-queue", args=[world.a.clinic.slug])


def action_url(world: World, update: ManualUpdate) -> str:
    return reverse("records:update-action", args=[world.a.clinic.slug, update.pk])


@pytest.fixture
def held(world: World) -> dict[str, ManualUpdate]:
    ingest(world.a.clinic, batch(owner()))
    ingest(
        world.a.clinic,
        batch(
            owner(
                first_name="Danielle",
                address={"line1": "40 Birch Ave"},
                modified_at=LATER,
                patients=[pet(name="Biscuit II", modified_at=LATER)],
            )
        ),
    )
    return {u.kind: u for u in ManualUpdate.objects.all()}


def test_the_queue_shows_both_sides_and_filters_by_kind(world: World, held) -> None:
    page = login(world.a.staff).get(queue_url(world))
    text = page.content.decode()
    assert "Danielle" in text and "Dana" in text
    assert "40 Birch Ave" in text and "12 Alder St" in text
    assert "Biscuit II" in text

    only_pets = login(world.a.staff).get(queue_url(world), {"kind": "pet_name"}).content.decode()
    assert "Biscuit II" in only_pets
    assert "40 Birch Ave" not in only_pets


def test_accept_applies_the_pims_value_and_is_audited(world: World, held) -> None:
    response = login(world.a.staff).post(
        action_url(world, held["client_name"]), {"action": "accept"}
    )
    assert response.status_code == 302
    client = Client.objects.get(pims_id="C-1")
    assert client.first_name == "Danielle"
    event = AuditEvent.objects.get(action="manual_update.accepted.client_name")
    assert event.actor == world.a.staff
    assert event.before == {"first_name": "Dana", "last_name": "Whitfield"}


def test_edit_then_accept_keeps_the_edited_shipping_address(world: World, held) -> None:
    login(world.a.staff).post(
        action_url(world, held["client_address"]),
        {
            "action": "edit",
            "line1": "40 Birch Avenue, Suite 2",
            "line2": "",
            "city": "Portland",
            "state": "OR",
            "postcode": "97210",
            "country": "US",
        },
    )
    client = Client.objects.get(pims_id="C-1")
    assert (client.address_line1, client.postcode) == ("40 Birch Avenue, Suite 2", "97210")
    held["client_address"].refresh_from_db()
    assert held["client_address"].status == "accepted"
    assert held["client_address"].resolution_note == "Edited before accepting."


def test_accepting_a_pet_name_renames_the_pet_and_records_who_and_why(world: World, held) -> None:
    login(world.a.staff).post(
        action_url(world, held["pet_name"]),
        {"action": "accept", "same_pet": "on", "reason": "Owner renamed him"},
    )
    assert Patient.objects.get(pims_id="P-1").name == "Biscuit II"
    event = AuditEvent.objects.get(action="patient.renamed")
    assert (event.before, event.after["name"]) == ({"name": "Biscuit"}, "Biscuit II")
    assert (event.actor, event.after["reason"]) == (world.a.staff, "Owner renamed him")


def test_a_pet_name_is_not_accepted_without_the_same_pet_attestation(world: World, held) -> None:
    page = login(world.a.staff).post(
        action_url(world, held["pet_name"]), {"action": "accept", "reason": "x"}, follow=True
    )
    assert "Confirm that this is the same pet" in page.content.decode()
    assert Patient.objects.get(pims_id="P-1").name == "Biscuit"
    held["pet_name"].refresh_from_db()
    assert held["pet_name"].status == "pending"


def test_dismiss_needs_a_reason_and_keeps_the_pharmacy_value(world: World, held) -> None:
    staff = login(world.a.staff)
    refused = staff.post(action_url(world, held["client_name"]), {"action": "dismiss"}, follow=True)
    assert "Say why the update is dismissed." in refused.content.decode()
    assert ManualUpdate.objects.get(pk=held["client_name"].pk).status == "pending"

    staff.post(
        action_url(world, held["client_name"]),
        {"action": "dismiss", "reason": "Ships to her maiden name"},
    )
    update = ManualUpdate.objects.get(pk=held["client_name"].pk)
    assert (update.status, update.resolution_note) == ("dismissed", "Ships to her maiden name")
    assert Client.objects.get(pims_id="C-1").first_name == "Dana"


def test_with_htmx_the_row_leaves_and_the_counts_update(world: World, held) -> None:
    response = login(world.a.staff).post(
        action_url(world, held["client_name"]), {"action": "accept"}, headers={"HX-Request": "true"}
    )
    text = response.content.decode()
    assert response.status_code == 200
    assert f'id="update-{held["client_name"].pk}"' not in text
    assert 'id="update-counts" class="tabs" aria-label="Kinds of update" hx-swap-oob="true"' in text
    assert 'data-testid="pending-total">2<' in text
    assert response["HX-Trigger"] == "manual-updates-changed"


def test_an_already_handled_update_says_so(world: World, held) -> None:
    staff = login(world.a.staff)
    staff.post(action_url(world, held["client_name"]), {"action": "accept"})
    again = staff.post(action_url(world, held["client_name"]), {"action": "accept"}, follow=True)
    assert "already handled (accepted)" in again.content.decode()


def test_possible_match_confirm_and_reject_from_the_queue(world: World) -> None:
    ClientFactory(
        clinic=world.a.clinic,
        customer_ref="HD-7",
        first_name="Dana",
        last_name="Whitfield",
        email="",
        phone="",
        address_line1="12 Alder St",
        postcode="97205",
    )
    # Another first name at the same address: a household, or a nickname? Staff decide.
    ingest(world.a.clinic, batch(owner(first_name="Laura")))
    update = ManualUpdate.objects.get(kind="possible_match")
    page = login(world.a.staff).get(queue_url(world), {"kind": "possible_match"}).content.decode()
    assert "Same person — merge" in page and "HD-7" in page

    login(world.a.staff).post(action_url(world, update), {"action": "confirm"})
    assert Client.objects.get(customer_ref="HD-7").pims_id == "C-1"
    assert AuditEvent.objects.filter(
        action="manual_update.match_confirmed", actor=world.a.staff
    ).exists()


def test_the_dashboard_counts_pending_updates(world: World, held) -> None:
    page = login(world.a.staff).get(reverse("clinic-dashboard", args=[world.a.clinic.slug]))
    assert 'data-testid="count-manual-updates">\n    <span class="num">3<' in page.content.decode()


def test_run_page_shows_counts_quarantine_and_stops_polling_when_done(world: World) -> None:
    run = ingest(
        world.a.clinic, batch(owner(), owner("C-2", patients=[pet("P-2", birth_date="yesterday")]))
    )
    page = login(world.a.staff).get(run.get_absolute_url()).content.decode()
    assert "birth_date is not a date like 2019-04-02 (got &#x27;yesterday&#x27;)." in page
    assert 'hx-trigger="every 1s"' not in page
    assert 'data-testid="count-created-total">3<' in page
    assert 'data-testid="count-created-clients">2<' in page
    assert 'data-testid="count-created-pets">1<' in page

    queued, _ = sync_run_create(clinic=world.a.clinic, body=batch(owner("C-3")), trigger="agent")
    progress = login(world.a.staff).get(
        queued.get_absolute_url(), headers={"HX-Request": "true", "HX-Target": "run-live"}
    )
    assert 'hx-trigger="every 1s"' in progress.content.decode()
    assert "<h1>" not in progress.content.decode()


def outcome_rows(html: str) -> list[tuple[str, str]]:
    """(PIMS id, kind) of each row of the run page's per-record outcomes."""
    if '<table class="list outcomes">' not in html:
        return []
    table = html.split('<table class="list outcomes">', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>", table)


def test_a_runs_records_are_found_by_pims_id_name_or_pet_name(world: World) -> None:
    run = ingest(
        world.a.clinic,
        batch(
            owner("C-1", patients=[pet("P-1", name="Biscuit"), pet("P-2", name="Mochi")]),
            owner("C-2", first_name="Sam", last_name="Okafor", patients=[pet("P-3", name="Pip")]),
            owner("C-3", first_name="Lee", last_name="Ash", patients=[pet("P-4", weight=-2)]),
        ),
    )
    staff = login(world.a.staff)

    def found(**params: str) -> list[tuple[str, str]]:
        response = staff.get(run.get_absolute_url(), params)
        assert response.status_code == 200
        return outcome_rows(response.content.decode())

    assert len(found()) == 7  # three clients, three pets, the quarantined pet
    assert found(q="okafor") == [("C-2", "Client"), ("P-3", "Pet")]  # the client and its pet
    assert found(q="  Sam   Okafor ") == [("C-2", "Client"), ("P-3", "Pet")]
    assert found(q="mochi") == [("C-1", "Client"), ("P-1", "Pet"), ("P-2", "Pet")]
    assert found(q="p-2") == [("P-2", "Pet")]  # a PIMS id in any case
    assert found(q="P-4") == [("P-4", "Pet")]  # quarantined: found by its PIMS id alone
    assert found(q="P-4", outcome="quarantined") == [("P-4", "Pet")]
    assert found(q="whitfield", outcome="quarantined") == []
    # A quarantined pet is found by its owner's PIMS id too, and named by its owner: a PIMS
    # finds a pet through its client.
    assert sorted(found(q="c-3")) == [("C-3", "Client"), ("P-4", "Pet")]
    page = staff.get(run.get_absolute_url(), {"q": "C-3"}).content.decode()
    assert page.count("Pet of C-3, Lee Ash") == 1  # its outcome row
    assert '<span class="muted small" data-testid="quarantined-owner">of C-3, Lee Ash' in page
    missing = staff.get(run.get_absolute_url(), {"q": "Zebra"}).content.decode()
    assert "No record of this run matches “Zebra”." in missing
    # Another clinic's client with the same name is not this run's record.
    ingest(world.b.clinic, batch(owner("C-9", first_name="Sam", last_name="Okafor", patients=[])))
    assert found(q="okafor") == [("C-2", "Client"), ("P-3", "Pet")]


@pytest.mark.parametrize(
    ("kind", "raw", "owner"),
    [
        ("patient", {"pims_id": " C-3 ", "first_name": "Lee", "last_name": "Ash"}, "C-3, Lee Ash"),
        ("patient", {"pims_id": "C-3", "first_name": ["Lee"], "last_name": 7}, "C-3"),
        ("patient", {"first_name": "Lee", "last_name": ""}, "Lee"),
        ("patient", {"pims_id": "C-" + "9" * 500}, "C-" + "9" * 198),
        ("patient", ["C-3"], ""),
        ("patient", None, ""),
        ("client", {"pims_id": "C-3", "first_name": "Lee"}, ""),  # a client is its own record
    ],
)
def test_a_quarantined_pets_owner_is_read_from_whatever_the_entry_holds(
    kind: str, raw: object, owner: str
) -> None:
    assert SyncRecordOutcome(kind=kind, raw=raw).owner_in_batch == owner


def test_a_long_quarantine_says_how_to_see_the_rest(world: World, monkeypatch) -> None:
    monkeypatch.setattr("records.views.runs.QUARANTINE_SHOWN", 2)
    run = ingest(
        world.a.clinic,
        batch(*(owner(f"C-{k}", patients=[pet(f"P-{k}", weight=-2)]) for k in range(3))),
    )
    page = login(world.a.staff).get(run.get_absolute_url()).content.decode()
    assert page.count('name="outcome" value=') == 2  # ticks for the two listed
    assert "Showing the first 2 of 3 quarantined records" in page
    assert "Retry the ticked records (none ticked: all 3)" in page


def test_run_csv_and_sync_report_list_every_record(world: World) -> None:
    run = ingest(world.a.clinic, batch(owner(), owner("C-2", patients=[])))
    response = login(world.a.staff).get(reverse("records:run-report", args=["alder", run.pk]))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == [
        *("pims_id", "kind", "outcome", "client_id", "customer_ref", "detail"),
        *("score", "evidence"),
    ]
    assert sorted((r[0], r[2]) for r in rows[1:]) == [
        ("C-1", "created"),
        ("C-2", "created"),
        ("P-1", "created"),
    ]

    out = io.StringIO()
    call_command("sync_report", run.pk, "--format", "json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["counts"] == {"created": 3}
    assert {r["pims_id"] for r in report["records"]} == {"C-1", "C-2", "P-1"}


def test_retrying_quarantined_records_from_the_run_page(
    world: World, django_capture_on_commit_callbacks
) -> None:
    run = ingest(world.a.clinic, batch(owner(patients=[pet(weight=-2)])))
    with django_capture_on_commit_callbacks(execute=True):
        response = login(world.a.staff).post(reverse("records:run-retry", args=["alder", run.pk]))
    retry = SyncRun.objects.get(trigger="retry")
    assert response["Location"] == retry.get_absolute_url()
    retry.refresh_from_db()
    assert retry.status == "succeeded"
    assert AuditEvent.objects.filter(action="sync.quarantine_retried", actor=world.a.staff).exists()


def test_ingest_batch_and_import_customers_commands(world: World, tmp_path) -> None:
    customers = tmp_path / "customers.csv"
    customers.write_text(
        "customer_ref,first_name,last_name,email,phone,line1,line2,city,state,postcode,pet_names\n"
        "HD-1,Dana,Whitfeld,dana@example.org,5035550142,12 Alder St,,Portland,OR,97205,"
        "Biscuit;Rex\n"
        ",No,Ref,,,,,,,,\n"
        "HD-2,Bad,Email,not-an-email,,,,,,,\n"
    )
    out, err = io.StringIO(), io.StringIO()
    call_command("import_customers", "alder", str(customers), stdout=out, stderr=err)
    assert "1 created" in out.getvalue() and "2 rows with errors" in out.getvalue()
    assert "line 3: customer_ref is required." in err.getvalue()
    assert "line 4: 'not-an-email' is not an email address." in err.getvalue()
    assert list(
        Client.objects.get(customer_ref="HD-1").patients.values_list("name", flat=True)
    ) == ["Biscuit", "Rex"]

    file = tmp_path / "batch.json"
    file.write_text(batch(owner(), batch_id="file-1"))
    out = io.StringIO()
    call_command("ingest_batch", "alder", str(file), "--no-progress", stdout=out)
    assert "merged 2" in out.getvalue()  # the client and its pet Biscuit
    out = io.StringIO()
    call_command("ingest_batch", "alder", str(file), "--no-progress", stdout=out)
    assert "already applied" in out.getvalue()
