"""The clinic-side agent end to end: a generated Cornerstone-like database, the agent, the live
VetSync test server (sometimes behind a proxy that plays an outage), and what staff then see."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from django.db.models import Count

from clinics.models import Integration
from prescriptions.models import Order, WritebackItem
from prescriptions.services import LineSpec, order_place
from records.models import Client, FullExtract, ManualUpdate, Patient, SyncRun
from tests.agent.conftest import (
    ROOT,
    Site,
    agent_command,
    later,
    once,
    practice_sql,
    write_config,
)
from tests.agent.proxy import Proxy
from tests.conftest import World
from tests.prescriptions.conftest import rx
from tests.prescriptions.writeback import ship
from vetsync.agent.state import State


def clinic_clients(site: Site) -> int:
    return Client.objects.filter(clinic=site.integration.clinic).count()


def test_first_copy_arrives_in_parts_and_an_unchanged_practice_sends_nothing(
    site: Site, practice_db: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, url=site.url, token=site.token, practice=f"sqlite:///{practice_db}", part_size=10
    )

    summary = once(config)

    assert summary["errors"] == []
    assert clinic_clients(site) == 30
    runs = SyncRun.objects.filter(clinic=site.integration.clinic).order_by("pk")
    assert [run.full for run in runs] == [True, True, True]
    extract = FullExtract.objects.get(clinic=site.integration.clinic)
    assert (extract.parts, extract.is_complete) == (3, True)
    # What the practice keeps, as VetSync shows it: codes mapped, the joined names, pounds.
    connection = sqlite3.connect(str(practice_db))
    name, weight, sex = connection.execute(
        "SELECT name, weight, sex FROM patient WHERE patient_id = 'P-1'"
    ).fetchone()
    pet = Patient.objects.get(clinic=site.integration.clinic, pims_id="P-1")
    assert (pet.name, pet.weight, pet.weight_unit) == (name, Decimal(str(weight)), "lb")
    assert (
        pet.sex == {"MN": "Male neutered", "FS": "Female spayed", "M": "Male", "F": "Female"}[sex]
    )
    assert pet.species in {"Canine", "Feline", "Lagomorph"}
    assert Client.objects.get(clinic=site.integration.clinic, pims_id="C-1").country == "US"

    again = once(config)

    assert (again["queued_clients"], again["sent_batches"]) == (0, 0)
    assert runs.count() == 3  # an empty delta makes no run


def test_a_rename_is_held_a_weight_applied_and_a_deceased_pet_puts_orders_on_hold(
    world: World, site: Site, practice_db: Path, tmp_path: Path, catalogue
) -> None:
    config = write_config(
        tmp_path, url=site.url, token=site.token, practice=f"sqlite:///{practice_db}"
    )
    once(config)
    client = Client.objects.get(clinic=site.integration.clinic, pims_id="C-3")
    original_last_name = client.last_name
    pet = client.patients.order_by("pk").first()
    order = order_place(
        clinic=site.integration.clinic,
        patient=pet,
        lines=[
            LineSpec(
                product=catalogue.carprofen,
                quantity=30,
                prescription_item=rx(world.b, pet, catalogue.carprofen).items.get(),
            )
        ],
        actor=world.b.staff,
    )
    weighed = Patient.objects.get(clinic=site.integration.clinic, pims_id="P-2")

    practice_sql(
        practice_db,
        "UPDATE client SET last_name = 'Rivers', last_modified = ? WHERE client_id = 'C-3'",
        later(),
    )
    practice_sql(
        practice_db,
        "UPDATE patient SET weight = 55.5, last_modified = ? WHERE patient_id = 'P-2'",
        later(),
    )
    practice_sql(
        practice_db,
        "UPDATE patient SET deceased_flag = 'Y', deceased_date = '2026-11-20', last_modified = ? "
        "WHERE patient_id = ?",
        later(),
        pet.pims_id,
    )
    summary = once(config)

    assert summary["errors"] == []
    client.refresh_from_db()
    assert client.last_name == original_last_name  # a rename waits for staff
    held = ManualUpdate.objects.get(client=client, kind=ManualUpdate.Kind.CLIENT_NAME)
    assert held.status == ManualUpdate.Status.PENDING
    assert "Rivers" in json.dumps(held.proposed, default=str)
    weighed.refresh_from_db()
    assert weighed.weight == Decimal("55.50")
    order.refresh_from_db()
    pet.refresh_from_db()
    assert pet.is_deceased
    assert order.status == Order.Status.ON_HOLD
    last_run = SyncRun.objects.filter(clinic=site.integration.clinic).latest("pk")
    changed_clients = {"C-3", weighed.client.pims_id}
    assert (last_run.full, last_run.total) == (False, len(changed_clients))


def test_the_agent_killed_mid_copy_resumes_without_losing_or_doubling(
    site: Site, proxy: Proxy, practice_db: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, url=proxy.url, token=site.token, practice=f"sqlite:///{practice_db}", part_size=6
    )
    # VetSync applies the third part, but its answer never reaches the agent: it dies waiting.
    proxy.rules.hold_after_posts = 2
    process = subprocess.Popen(
        [sys.executable, "-m", "vetsync.agent", "-c", str(config), "once"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proxy.wait_for(lambda: any(seen.status < 0 for seen in proxy.seen))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert SyncRun.objects.filter(clinic=site.integration.clinic).count() == 3
    assert clinic_clients(site) == 18

    proxy.rules.hold_after_posts = None
    proxy.rules.released.set()
    restarted = agent_command(config, "once")

    assert restarted.returncode == 0, restarted.stderr
    assert clinic_clients(site) == 30
    runs = SyncRun.objects.filter(clinic=site.integration.clinic)
    assert runs.count() == 5  # the third part was resent under its id: recognised, not re-run
    assert sorted(runs.values_list("total", flat=True)) == [6, 6, 6, 6, 6]
    posted = [seen for seen in proxy.seen if seen.method == "POST"]
    assert len(posted) == 6  # five parts, one of them twice
    status = agent_command(config, "status").stdout
    assert "complete: 5 of 5 parts" in status


def test_changes_made_while_vetsync_is_down_are_delivered_after(
    site: Site, proxy: Proxy, practice_db: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        url=proxy.url,
        token=site.token,
        practice=f"sqlite:///{practice_db}",
        max_attempts=2,
    )
    once(config)
    proxy.rules.down = True
    practice_sql(
        practice_db,
        "UPDATE patient SET weight = 12.5, last_modified = ? WHERE patient_id = 'P-1'",
        later(1),
    )
    first = once(config)
    practice_sql(
        practice_db,
        "UPDATE client SET email = 'new@example.org', last_modified = ? WHERE client_id = 'C-2'",
        later(2),
    )
    second = once(config)
    assert "503" in first["errors"][0] and "503" in second["errors"][0]
    assert Patient.objects.get(clinic=site.integration.clinic, pims_id="P-1").weight != Decimal(
        "12.5"
    )

    proxy.rules.down = False
    proxy.rules.throttle = 1  # and VetSync, back, first asks the agent to slow down
    third = once(config)

    assert third["errors"] == []
    assert Patient.objects.get(clinic=site.integration.clinic, pims_id="P-1").weight == Decimal(
        "12.50"
    )
    assert (
        Client.objects.get(clinic=site.integration.clinic, pims_id="C-2").email == "new@example.org"
    )
    statuses = [seen for seen in proxy.seen if seen.method == "POST"]
    throttled = next(i for i, seen in enumerate(statuses) if seen.status == 429)
    assert statuses[throttled + 1].at - statuses[throttled].at >= 0.9  # Retry-After: 1 honoured


def test_a_shipped_order_becomes_one_line_item_in_the_practice_database(
    world: World, site: Site, proxy: Proxy, practice_db: Path, tmp_path: Path, catalogue
) -> None:
    config = write_config(
        tmp_path,
        url=proxy.url,
        token=site.token,
        practice=f"sqlite:///{practice_db}",
        writer="table",
    )
    once(config)
    pet = Patient.objects.get(clinic=site.integration.clinic, pims_id="P-1")
    order = ship(world.b, rx(world.b, pet, catalogue.carprofen))
    item = WritebackItem.objects.get(order=order)

    # The line is written, but VetSync never hears it: the ack is lost.
    proxy.rules.drop_acks = True
    once(config)
    proxy.rules.drop_acks = False
    once(config)
    once(config)

    rows = (
        sqlite3.connect(str(practice_db))
        .execute(
            "SELECT patient_id, client_id, entry_type, description, quantity, vetsync_ref "
            "FROM patient_history"
        )
        .fetchall()
    )
    assert rows == [
        (
            "P-1",
            "C-1",
            "HD-dispense",
            f"Home delivery: Carprofen 75 mg chewable x 30, shipped "
            f"{order.shipped_on.isoformat()}, order {order.number}",
            30,
            f"VS-WB-{item.pk}",
        )
    ]
    item.refresh_from_db()
    assert item.status == WritebackItem.Status.DELIVERED


def test_a_line_the_practice_cannot_take_is_acked_as_failed_with_the_reason(
    world: World, site: Site, practice_db: Path, tmp_path: Path, catalogue
) -> None:
    config = write_config(
        tmp_path,
        url=site.url,
        token=site.token,
        practice=f"sqlite:///{practice_db}",
        writer="table",
    )
    once(config)
    practice_sql(practice_db, "DROP TABLE patient_history")
    order = ship(
        world.b,
        rx(
            world.b,
            Patient.objects.get(clinic=site.integration.clinic, pims_id="P-1"),
            catalogue.carprofen,
        ),
    )

    summary = once(config)

    item = WritebackItem.objects.get(order=order)
    assert summary["writeback_failed"] == 1
    assert item.status == WritebackItem.Status.FAILED
    assert "patient_history" in item.last_error


def test_the_file_drop_writes_each_item_once_for_the_practice_import(
    world: World, site: Site, practice_db: Path, tmp_path: Path, catalogue
) -> None:
    config = write_config(
        tmp_path, url=site.url, token=site.token, practice=f"sqlite:///{practice_db}"
    )
    once(config)
    order = ship(
        world.b,
        rx(
            world.b,
            Patient.objects.get(clinic=site.integration.clinic, pims_id="P-1"),
            catalogue.carprofen,
        ),
    )

    once(config)
    once(config)

    (dropped,) = (tmp_path / "dropped").iterdir()
    text = dropped.read_text(encoding="utf-8")
    assert order.number in text and "Carprofen 75 mg chewable" in text
    state = State(tmp_path / "agent-state.sqlite3")
    assert state.writeback_counts() == {"written": 1}
    state.close()


def test_a_bad_mapping_is_refused_by_check_with_a_clear_message(
    site: Site, practice_db: Path, tmp_path: Path
) -> None:
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(
        (ROOT / "vetsync/agent/examples/cornerstone.toml")
        .read_text(encoding="utf-8")
        .replace('weight = "weight"', 'weight = "wieght"'),
        encoding="utf-8",
    )
    config = write_config(
        tmp_path,
        url=site.url,
        token=site.token,
        practice=f"sqlite:///{practice_db}",
        mapping=mapping,
    )

    result = agent_command(config, "check")

    assert result.returncode == 1
    assert "column 'wieght' does not exist in table 'patient'" in result.stderr
    assert not SyncRun.objects.exists()


def test_check_passes_and_names_a_wrong_token(
    site: Site, practice_db: Path, tmp_path: Path
) -> None:
    good = write_config(
        tmp_path, url=site.url, token=site.token, practice=f"sqlite:///{practice_db}"
    )
    bad = write_config(
        tmp_path,
        url=site.url,
        token="vsa_wrong",
        practice=f"sqlite:///{practice_db}",
        name="bad.toml",
    )

    passed, refused = agent_command(good, "check"), agent_command(bad, "check")

    assert passed.returncode == 0, passed.stderr
    assert "30 clients readable" in passed.stdout
    assert refused.returncode == 1
    assert "VetSync refused the agent token" in refused.stderr


def test_vetsync_shows_the_agents_contact_and_version(
    site: Site, practice_db: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, url=site.url, token=site.token, practice=f"sqlite:///{practice_db}"
    )

    once(config)

    integration = Integration.objects.get(pk=site.integration.pk)
    assert integration.agent_version.startswith("vetsync-agent/1.0.0")
    assert integration.agent_last_contact_at is not None
    assert integration.agent_data_at is not None


def test_a_refused_batch_is_shown_and_its_clients_go_again_once_the_cause_is_fixed(
    site: Site, practice_db: Path, tmp_path: Path
) -> None:
    practice = f"sqlite:///{practice_db}"
    wrong = write_config(
        tmp_path, url=site.url, token=site.token, practice=practice, batch_source="syncvet"
    )

    refused = once(wrong)

    assert "HTTP 400" in refused["errors"][0]
    assert clinic_clients(site) == 0
    assert "source 'syncvet' is not accepted" in agent_command(wrong, "status").stdout

    fixed = write_config(tmp_path, url=site.url, token=site.token, practice=practice)
    summary = once(fixed)

    assert summary["errors"] == []
    assert clinic_clients(site) == 30


def test_a_client_or_pet_removed_from_the_practice_is_reported_once_as_inactive(
    site: Site, practice_db: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, url=site.url, token=site.token, practice=f"sqlite:///{practice_db}"
    )
    once(config)
    clinic = site.integration.clinic
    owner = Client.objects.filter(clinic=clinic).annotate(n=Count("patients")).filter(n__gte=2)[0]
    gone_pet, kept_pet = owner.patients.order_by("pk")[:2]
    practice_sql(practice_db, "DELETE FROM patient WHERE patient_id = ?", gone_pet.pims_id)
    practice_sql(practice_db, "DELETE FROM patient WHERE client_id = 'C-30'")
    practice_sql(practice_db, "DELETE FROM client WHERE client_id = 'C-30'")

    summary = once(config)
    again = once(config)

    assert summary["queued_clients"] == 2 and again["queued_clients"] == 0
    # VetSync's field policy shows an inactive flag as "PIMS differs" on the record's page
    # (staff decide), so what arrives is what the PIMS now says.
    gone_pet.refresh_from_db()
    kept_pet.refresh_from_db()
    assert (gone_pet.pims_seen["active"], kept_pet.pims_seen["active"]) == (False, True)
    left = Client.objects.get(clinic=clinic, pims_id="C-30")
    assert left.pims_seen["active"] is False
    assert {pet.pims_seen["active"] for pet in left.patients.all()} == {False}
