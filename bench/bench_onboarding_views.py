"""Benchmark: the onboarding team's views with a fleet of clinics (issue 16, item 7).

2,000 clinics, each with an integration of one of the five connectors and its onboarding
checklist, staff and vets, hourly sync runs (a few failed), writebacks (delivered, some failed
or waiting) and agents' multi-part first copies; some integrations failing, overdue, paused or
still onboarding. Then every page below is requested through django.test.Client as the
onboarding team (two-factor verified), with production settings (DEBUG off), and its server
time measured. Target: p95 <= 300 ms per page.

    python bench/bench_onboarding_views.py [--clinics 2000] [--runs-per-clinic 240]
                                           [--requests 60] [--backend postgres|sqlite|both]
    python bench/bench_onboarding_views.py --quick     # 200 clinics, a few requests (CI)

PostgreSQL is used when reachable at BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1
:5432/postgres); a throwaway database is created and dropped. Prints figures; asserts nothing
but that every page answers 200.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import harness  # noqa: E402  (bench/ is put on the path just above)

CONNECTORS = ["ezyvet", "syncvet", "vetdata", "datapoint", "vetsuccess"]
PROBLEM_SHARE = 0.2  # clinics with writebacks, failed runs or a failing integration


def _clinics(n: int, rng: random.Random, now: dt.datetime) -> list[Any]:
    from clinics.models import Clinic, Integration, OnboardingChecklist

    clinics = Clinic.objects.bulk_create(
        Clinic(
            name=f"Clinic {i:05d} {rng.choice(['Vet', 'Animal Hospital', 'Pet Care'])}",
            slug=f"clinic-{i}",
            city=rng.choice(["Portland", "Austin", "Denver", "Boston"]),
            writeback_enabled=i % 3 == 0,
        )
        for i in range(n)
    )
    integrations = []
    for i, clinic in enumerate(clinics):
        status = "live" if i % 10 < 8 else ("onboarding" if i % 10 == 8 else "paused")
        overdue = i % 37 == 0
        integrations.append(
            Integration(
                clinic=clinic,
                connector=CONNECTORS[i % len(CONNECTORS)],
                status=status,
                last_successful_sync_at=None
                if status == "onboarding"
                else now - dt.timedelta(hours=5 if overdue else rng.uniform(0, 1)),
                failing_since=now - dt.timedelta(hours=2) if i % 23 == 0 else None,
                failure_kind="unreachable" if i % 23 == 0 else "",
                agent_version="SyncVet/2.1" if i % 5 else "",
                agent_last_contact_at=now if i % 5 else None,
            )
        )
    Integration.objects.bulk_create(integrations)
    for integration in Integration.objects.all():  # each path's checklist, as save() makes it
        OnboardingChecklist.objects.ensure_for(integration)
    return clinics


def _people(clinics: list[Any]) -> None:
    from django.contrib.auth import get_user_model

    from clinics.models import Membership, Role, Vet

    User = get_user_model()
    users = User.objects.bulk_create(
        User(username=f"staff-{c.pk}", email=f"staff{c.pk}@example.org") for c in clinics
    )
    Membership.objects.bulk_create(
        Membership(user=u, clinic=c, role=Role.STAFF) for u, c in zip(users, clinics, strict=True)
    )
    Vet.objects.bulk_create(
        Vet(clinic=c, first_name="Robin", last_name=f"Vet{c.pk}", pims_user_id=str(c.pk))
        for c in clinics
    )


def _runs(clinics: list[Any], per_clinic: int, rng: random.Random, now: dt.datetime) -> int:
    """Hourly runs going back ``per_clinic`` hours; a problem clinic has a few failed."""
    from records.models import FullExtract, SyncRun
    from vetsync.lib.bulk import insert_rows

    rows = []
    for n, clinic in enumerate(clinics):
        troubled = n % int(1 / PROBLEM_SHARE) == 0
        for h in range(per_clinic):
            at = now - dt.timedelta(hours=h, minutes=rng.uniform(0, 50))
            failed = troubled and h % 17 == 0
            rows.append(
                {
                    "clinic_id": clinic.pk,
                    "source": "syncvet",
                    "trigger": "agent",
                    "batch_id": f"b-{h}",
                    "status": "failed" if failed else "succeeded",
                    "created_at": at,
                    "started_at": at,
                    "finished_at": at + dt.timedelta(seconds=4),
                    "total": 12,
                    "position": 12,
                    "counts": {"updated": 10, "unchanged": 2},
                    "kind_counts": {"client.updated": 6, "patient.updated": 4},
                    "problem": "internal" if failed else "",
                }
            )
        if len(rows) > 100_000:
            insert_rows(SyncRun, rows)
            rows = []
    insert_rows(SyncRun, rows)
    FullExtract.objects.bulk_create(
        FullExtract(clinic=c, extract_id="first", parts=4, arrived=3 if n % 2 else 4)
        for n, c in enumerate(clinics[1::5])
    )
    return SyncRun.objects.count()


def _writebacks(clinics: list[Any], per_clinic: int, now: dt.datetime) -> int:
    """Clinics with WriteBack on: delivered writebacks, and some failed or waiting."""
    from clinics.models import Vet
    from prescriptions.models import Prescription, Product, WritebackItem
    from records.models import Client, Patient

    product = Product.objects.create(name="Carprofen 75 mg", sku="CARP-75", price=Decimal("20"))
    vets = {vet.clinic_id: vet for vet in Vet.objects.all()}
    items = []
    for n, clinic in enumerate(c for c in clinics if c.writeback_enabled):
        client = Client.objects.create(clinic=clinic, first_name="Dana", last_name=f"W{n}")
        pet = Patient.objects.create(clinic=clinic, client=client, name="Biscuit")
        rx = Prescription.objects.create(
            clinic=clinic,
            patient=pet,
            vet=vets[clinic.pk],
            expires_on=now.date() + dt.timedelta(days=365),
        )
        for k in range(per_clinic):
            status = "delivered"
            if n % 4 == 0 and k < 2:
                status = "failed"
            elif n % 7 == 0 and k < 3:
                status = "pending"
            items.append(
                WritebackItem(
                    clinic=clinic,
                    prescription=rx,
                    kind="dispense",
                    target="agent",
                    sequence=k,
                    key=f"wb-{clinic.pk}-{k}",
                    payload={"product": product.sku},
                    status=status,
                    created_at=now - dt.timedelta(hours=k),
                    delivered_at=now - dt.timedelta(hours=k) if status == "delivered" else None,
                )
            )
    WritebackItem.objects.bulk_create(items, batch_size=5000)
    return len(items)


def _onboarding_user() -> Any:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django_otp.oath import TOTP

    from clinics.access import ONBOARDING_GROUP
    from clinics.two_factor.services import totp_device_confirm, totp_device_start

    user = get_user_model().objects.create_user(
        "bench-onboarding",
        password="x",  # noqa: S106
        is_staff=True,
    )
    user.groups.add(Group.objects.get(name=ONBOARDING_GROUP))
    device = totp_device_start(user=user)
    codes = totp_device_confirm(device=device, token=str(TOTP(device.bin_key).token()).zfill(6))
    user.bench_recovery_code = codes[0]
    return user


def load(n_clinics: int, runs_per_clinic: int) -> Any:
    from django.db import transaction
    from django.utils import timezone

    rng = random.Random(16)
    now = timezone.now()
    started = time.perf_counter()
    with transaction.atomic():
        clinics = _clinics(n_clinics, rng, now)
        _people(clinics)
        runs = _runs(clinics, runs_per_clinic, rng, now)
        writebacks = _writebacks(clinics, 20, now)
        user = _onboarding_user()
    print(
        f"  loaded {n_clinics:,} clinics, {runs:,} sync runs, {writebacks:,} writebacks in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return user


def child(n_clinics: int, runs_per_clinic: int, n_requests: int) -> None:
    """Runs in its own process, on the database the environment names."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vetsync.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client as HttpClient
    from django.urls import reverse

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)  # pages as production serves
    user = load(n_clinics, runs_per_clinic)
    with connection.cursor() as cursor:
        # Statistics as a running database has them (autovacuum on PostgreSQL).
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    http = HttpClient()
    http.force_login(user)
    verified = http.post(
        reverse("two-factor-verify"), {"token": user.bench_recovery_code}, secure=True
    )
    assert verified.status_code == 302, "the second factor was refused"
    rng = random.Random(7)
    last_page = max(1, -(-n_clinics // 50))  # pages of 50 (health page and admin lists)
    middle = max(1, last_page // 2)
    pages = {
        "integration health": [
            "",
            f"?page={rng.randint(2, last_page)}" if last_page > 1 else "",
            "?connector=ezyvet",
            "?state=attention",
            "?state=failing&connector=syncvet",
            "?q=Clinic 0042",
        ],
        "clinics": ["", f"?p={middle}", "?integration__connector__exact=vetdata", "?attention=yes"],
        "integrations": [
            "",
            f"?p={last_page}",
            "?connector__exact=datapoint",
            "?status__exact=live",
        ],
        "checklists": ["", "?onboarding=overdue", f"?p={middle}"],
        "vets": ["", f"?p={last_page}", "?q=Vet1"],
        "memberships": ["", f"?p={middle}"],
        "writebacks": ["", "?status__exact=failed", "?p=2"],
        "writeback health": [""],
    }
    bases = {
        "integration health": reverse("admin:integration-health"),
        "clinics": reverse("admin:clinics_clinic_changelist"),
        "integrations": reverse("admin:clinics_integration_changelist"),
        "checklists": reverse("admin:clinics_onboardingchecklist_changelist"),
        "vets": reverse("admin:clinics_vet_changelist"),
        "memberships": reverse("admin:clinics_membership_changelist"),
        "writebacks": reverse("admin:prescriptions_writebackitem_changelist"),
        "writeback health": reverse("admin:prescriptions_writebackitem_health"),
    }
    _measure(http, pages, bases, n_requests, rng)
    print(f"  database: {connection.vendor}")


def _measure(
    http: Any, pages: dict[str, list[str]], bases: dict[str, str], n: int, rng: random.Random
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    # Wall time is what staff wait; on a loaded machine it counts other processes' turns too,
    # so the server's own CPU time and the database's (as the queries' wall time) are shown.
    print(
        f"  {'page':<20} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'cpu p95':>8} "
        f"{'sql p95':>8} {'queries':>8}"
    )
    for label, variants in pages.items():
        for query in variants:  # warm caches, templates, connections
            http.get(bases[label] + query, secure=True)
        times, cpu, sql, queries, slowest = [], [], [], 0, ("", 0.0)
        for _ in range(n):
            url = bases[label] + rng.choice(variants)
            with CaptureQueriesContext(connection) as captured:
                started, started_cpu = time.perf_counter(), time.process_time()
                response = http.get(url, secure=True)
                elapsed = (time.perf_counter() - started) * 1000
                cpu.append((time.process_time() - started_cpu) * 1000)
            assert response.status_code == 200, (url, response.status_code)
            sql.append(sum(float(q["time"]) for q in captured) * 1000)
            times.append(elapsed)
            queries = max(queries, len(captured))
            if elapsed > slowest[1]:
                slowest = (url, elapsed)
        print(
            f"  {label:<20} {statistics.median(times):8.1f} {_p95(times):8.1f} {max(times):8.1f} "
            f"{_p95(cpu):8.1f} {_p95(sql):8.1f} {queries:8d}   slowest: {slowest[0]}",
            flush=True,
        )


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clinics", type=int, default=2000)
    parser.add_argument("--runs-per-clinic", type=int, default=240)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="postgres")
    parser.add_argument("--quick", action="store_true", help="200 clinics, 24 runs, 10 requests")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.clinics, args.runs_per_clinic, args.requests = 200, 24, 10
    if args.child:
        child(args.clinics, args.runs_per_clinic, args.requests)
        return
    print(
        f"Onboarding views with {args.clinics:,} clinics, {args.runs_per_clinic} runs each, "
        f"{args.requests} requests per page"
    )
    with tempfile.TemporaryDirectory(prefix="vetsync-bench-") as tmp:
        for backend in harness.backends(args.backend):
            harness.run_child(
                backend,
                __file__,
                [
                    *("--clinics", str(args.clinics)),
                    *("--runs-per-clinic", str(args.runs_per_clinic)),
                    *("--requests", str(args.requests)),
                ],
                var_dir=Path(tmp),
                extra_env={"ALLOWED_HOSTS": "testserver"},
            )


if __name__ == "__main__":
    main()
