"""Benchmark: the client list, search, client page and pet page of a clinic of 100,000 clients.

A clinic with 100,000 clients (20,000 of them home-delivery customers, 3,000 of those merged with
their PIMS record) and 150,000 pets, with weight history, sync outcomes, audit events and
pending manual updates, is loaded with bulk inserts; then 200 requests each go through
django.test.Client with production settings (DEBUG off). Target (issue 6): p95 <= 150 ms server
time per page, on SQLite and on PostgreSQL.

    python bench/bench_client_pages.py [--clients 100000] [--requests 200]
                                        [--backend sqlite|postgres|both]

PostgreSQL is used when reachable at BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1
:5432/postgres); a throwaway database is created and dropped. Prints figures; asserts nothing.
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

FIRST = [
    "Dana", "Sam", "Alex", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery",
    "Quinn", "Harper", "Rowan", "Emerson", "Finley", "Hayden", "Parker", "Reese", "Skyler",
    "Blake", "Cameron", "Drew", "Elliot", "Frankie", "Gray", "Jesse", "Kendall", "Logan",
]  # fmt: skip
LAST = [
    "Whitfield", "Okafor", "Nguyen", "Garcia", "Smith", "Johnson", "Brown", "Lee", "Martin",
    "Clark", "Lewis", "Walker", "Hall", "Allen", "Young", "King", "Wright", "Scott", "Green",
    "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell", "Roberts", "Carter", "Phillips",
]  # fmt: skip
PETS = ["Biscuit", "Rex", "Luna", "Milo", "Bella", "Charlie", "Max", "Daisy", "Oliver", "Coco"]
SPECIES = [("Canine", "Beagle"), ("Feline", "Siamese"), ("Canine", "Poodle")]
STREETS = ["Alder St", "Birch Ave", "Cedar Rd", "Elm St", "Maple Dr", "Oak Ln", "Pine Ct"]
BATCH = 5000


def insert(model: Any, rows: list[dict[str, Any]]) -> None:
    """Straight to the driver (executemany on SQLite, COPY on PostgreSQL), as the sync does."""
    from vetsync.lib.bulk import insert_rows

    for start in range(0, len(rows), BATCH * 10):
        insert_rows(model, rows[start : start + BATCH * 10])


def load(n_clients: int, rng: random.Random) -> dict[str, Any]:
    """Fill a fresh clinic; returns what the requests need (slug, ids)."""
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from clinics.models import AuditEvent, Clinic, Membership, Role
    from records.models import (
        Client,
        ClientMerge,
        ManualUpdate,
        Patient,
        SyncRecordOutcome,
        SyncRun,
        WeightRecord,
    )

    clinic = Clinic.objects.create(name="Bench Clinic", slug="bench")
    user = get_user_model().objects.create_user("bench-staff", password="x")  # noqa: S106
    Membership.objects.create(user=user, clinic=clinic, role=Role.STAFF)
    now = timezone.now()
    first_at, later_at = now - dt.timedelta(days=400), now - dt.timedelta(days=10)
    runs = {
        name: SyncRun.objects.create(
            clinic=clinic,
            source="syncvet",
            trigger="agent",
            batch_id=f"bench-{name}",
            full=name == "first",
            status=SyncRun.Status.SUCCEEDED,
            created_at=at,
        )
        for name, at in (("first", first_at), ("later", later_at))
    }
    n_customers = n_clients // 5
    n_merged = min(3000, n_customers)
    started = time.perf_counter()
    plan = {"clinic_id": clinic.pk, "customers": n_customers, "merged": n_merged}
    with transaction.atomic():
        insert(Client, client_rows(n_clients, rng, plan, first_at))
        ids = list(Client.objects.filter(clinic=clinic).order_by("pk").values_list("pk", flat=True))
        insert(Patient, pet_rows(ids, rng, plan, first_at))
        pets = list(
            Patient.objects.filter(clinic=clinic)
            .order_by("pk")
            .values_list("pk", "client_id", "weight", "pims_id")
        )
        weights, outcomes = weight_and_outcome_rows(ids, pets, plan, runs["first"].pk, first_at)
        insert(WeightRecord, weights)
        insert(SyncRecordOutcome, outcomes)
        insert(ClientMerge, merge_rows(ids, plan, runs["first"].pk, first_at))
        events, updates = history_rows(ids, plan, runs["later"].pk, later_at)
        insert(AuditEvent, events)
        insert(ManualUpdate, updates)
    print(
        f"  loaded {len(ids):,} clients, {len(pets):,} pets, {len(weights):,} weighings, "
        f"{len(outcomes):,} outcomes, {len(events):,} events in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return {
        "user_id": user.pk,
        "slug": clinic.slug,
        "client_ids": ids,
        "customer_ids": ids[:n_customers],
        "pet_ids": [row[0] for row in pets],
    }


def client_rows(
    n_clients: int, rng: random.Random, plan: dict[str, int], first_at: dt.datetime
) -> list[dict[str, Any]]:
    """The clients: the first fifth home-delivery customers, 3,000 of them merged."""
    from records.matching import normalize_phone

    n_customers, n_merged = plan["customers"], plan["merged"]
    stamps = {"created_at": first_at, "updated_at": first_at}
    clients = []
    for i in range(n_clients):
        customer = i < n_customers
        pims = not customer or i < n_merged
        phone = f"503{i:07d}"
        first, last = rng.choice(FIRST), f"{rng.choice(LAST)}{i % 997}"
        line1 = f"{i % 9000 + 1} {rng.choice(STREETS)}"
        seen = {
            "first_name": first,
            "last_name": last,
            "email": f"owner{i}@example.org",
            "phone": phone if i % 50 != 7 else f"971{i:07d}",  # some "PIMS differs"
            "line1": line1,
            "line2": "",
            "city": "Portland",
            "state": "OR",
            "postcode": f"97{i % 300:03d}",
            "country": "US",
            "active": True,
        }
        clients.append(
            {
                "clinic_id": plan["clinic_id"],
                "first_name": first,
                "last_name": last,
                "email": f"owner{i}@example.org",
                "phone": f"({phone[:3]}) {phone[3:6]}-{phone[6:]}",
                "phone_normalized": normalize_phone(phone),
                "address_line1": line1,
                "address_line2": "",
                "city": "Portland",
                "state": "OR",
                "postcode": seen["postcode"],
                "country": "US",
                "is_active": i % 100 != 3,
                "customer_ref": f"HD-{i}" if customer else "",
                "pims_id": f"C-{i}" if pims else "",
                "pims_seen": seen if pims else {},
                "pims_modified_at": first_at if pims else None,
                **stamps,
            }
        )
    return clients


def pet_rows(
    ids: list[int], rng: random.Random, plan: dict[str, int], first_at: dt.datetime
) -> list[dict[str, Any]]:
    """1.5 pets a client; a fiftieth of them deceased."""
    n_customers, n_merged = plan["customers"], plan["merged"]
    stamps = {"created_at": first_at, "updated_at": first_at}
    pets = []
    for i, client_id in enumerate(ids):
        for k in range(1 if i % 2 else 2):  # 1.5 pets per client
            species, breed = rng.choice(SPECIES)
            deceased = (i + k) % 50 == 0
            pims = i >= n_customers or i < n_merged
            pets.append(
                {
                    "clinic_id": plan["clinic_id"],
                    "client_id": client_id,
                    "name": rng.choice(PETS),
                    "species": species,
                    "breed": breed,
                    "sex": "Female spayed",
                    "birth_date": dt.date(2010 + i % 15, 1 + i % 12, 1 + i % 28),
                    "weight": Decimal(str(round(rng.uniform(2, 45), 1))),
                    "weight_unit": "kg",
                    "is_deceased": deceased,
                    "deceased_on": dt.date(2026, 1, 1 + i % 28) if deceased else None,
                    "microchip": "",
                    "is_active": True,
                    "pims_id": f"P-{i}-{k}" if pims else "",
                    "pims_seen": {"species": species, "breed": breed} if pims else {},
                    **stamps,
                }
            )
    return pets


def weight_and_outcome_rows(
    ids: list[int], pets: list[Any], plan: dict[str, int], run_id: int, first_at: dt.datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A weighing or three per pet; the first copy's outcome for every PIMS pet and client."""
    n_customers, n_merged = plan["customers"], plan["merged"]
    weights, outcomes = [], []
    for n, (pet_id, client_id, weight, pims_id) in enumerate(pets):
        for m in range(1 + n % 3):  # a weighing or three per pet
            weights.append(
                {
                    "patient_id": pet_id,
                    "weight": weight + m,
                    "unit": "kg",
                    "recorded_at": first_at + dt.timedelta(days=90 * m),
                    "source": "pims",
                }
            )
        if pims_id:
            outcomes.append(
                {
                    "run_id": run_id,
                    "kind": "patient",
                    "pims_id": pims_id,
                    "outcome": "created",
                    "client_id": client_id,
                    "patient_id": pet_id,
                }
            )
    for i, client_id in enumerate(ids):
        if i >= n_customers or i < n_merged:
            outcomes.append(
                {
                    "run_id": run_id,
                    "kind": "client",
                    "pims_id": f"C-{i}",
                    "outcome": "created" if i >= n_customers else "merged",
                    "client_id": client_id,
                }
            )
    return weights, outcomes


def merge_rows(
    ids: list[int], plan: dict[str, int], run_id: int, first_at: dt.datetime
) -> list[dict[str, Any]]:
    """The merges of the first ``merged`` customers with their PIMS records."""
    return [
        {
            "clinic_id": plan["clinic_id"],
            "customer_id": ids[i],
            "pims_id": f"C-{i}",
            "method": "rule",
            "rule": "same email and a close name",
            "run_id": run_id,
            "snapshot": {
                "customer": {"id": ids[i], "customer_ref": f"HD-{i}", "phone": ""},
                "pets": [],
                "created_patients": [],
            },
            "created_at": first_at,
        }
        for i in range(plan["merged"])
    ]


def history_rows(
    ids: list[int], plan: dict[str, int], run_id: int, later_at: dt.datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A change history: an email applied by sync on every 10th client, a name change held
    for staff on every 100th PIMS client."""
    n_customers = plan["customers"]
    events, updates = [], []
    for i, client_id in enumerate(ids):
        if i % 10 == 0:
            events.append(
                {
                    "created_at": later_at,
                    "actor_label": "sync",
                    "clinic_id": plan["clinic_id"],
                    "action": "sync.client_updated",
                    "object_type": "records.client",
                    "object_id": str(client_id),
                    "object_repr": "",
                    "before": {"email": f"old{i}@example.org"},
                    "after": {"email": f"owner{i}@example.org", "run": run_id},
                }
            )
        if i % 100 == 5 and i >= n_customers:
            updates.append(
                {
                    "clinic_id": plan["clinic_id"],
                    "kind": "client_name",
                    "status": "pending",
                    "client_id": client_id,
                    "current": {"first_name": "A", "last_name": "B"},
                    "proposed": {"first_name": "A", "last_name": "C"},
                    "run_id": run_id,
                    "created_at": later_at,
                    "updated_at": later_at,
                }
            )
    return events, updates


def child(n_clients: int, n_requests: int) -> None:
    """Runs in its own process, on the database the environment names."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vetsync.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client as HttpClient

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)  # pages as production serves
    rng = random.Random(11)
    data = load(n_clients, rng)
    with connection.cursor() as cursor:
        # Statistics and visibility map as a running database has them (autovacuum on
        # PostgreSQL, which index-only scans rely on; ANALYZE on SQLite).
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    http = HttpClient()
    http.force_login(get_user_model().objects.get(pk=data["user_id"]))
    # Wall time is what a user waits; "cpu" is this process's own CPU time (Django, templates,
    # the driver), which other load on the machine does not inflate.
    print(f"  {'page':<12} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'cpu p95':>8} {'queries':>8}")
    for label, make_url in page_urls(data, rng, n_clients).items():
        measure(http, label, make_url, n_requests)
    print(f"  database: {connection.vendor}")


def page_urls(data: dict[str, Any], rng: random.Random, n: int) -> dict[str, Any]:
    """Per page kind, a function giving the next URL to request (searches as staff type
    them, list pages, sorts and filters, client and pet pages)."""
    base = f"/c/{data['slug']}"

    def searches() -> str:
        i = rng.randrange(n)
        phone = f"503{i:07d}"
        return rng.choice(
            [
                f"q={rng.choice(LAST).lower()[:4]}",  # a surname being typed
                f"q={rng.choice(LAST)}{i % 997}",
                f"q={rng.choice(FIRST)}+{rng.choice(LAST)[:3]}",  # first name and surname start
                f"q=owner{i}@exa",  # email
                f"q=%28{phone[:3]}%29+{phone[3:6]}-{phone[6:]}",  # (503) 555-0142
                f"q={phone[:3]}.{phone[3:6]}.{phone[6:]}",
                f"q=97{i % 300:03d}",  # postcode
                f"q=C-{i}",  # PIMS id
                f"q={rng.choice(PETS).lower()}",  # a pet's name (15,000 matches)
                "q=whit&filter=pending",
            ]
        )

    def lists() -> str:
        return rng.choice(
            [
                "",
                f"page={rng.randint(1, 20)}",
                f"page={rng.randint(1, n // 50)}",  # anywhere, even the last page
                "sort=-name",
                f"sort=added&page={rng.randint(1, 100)}",
                "sort=-postcode",
                "filter=pending",
                "filter=merged",
                "filter=home_delivery",
                "filter=deceased",
                "filter=inactive",
                "filter=duplicate",
                "filter=pims&sort=-added",
            ]
        )

    def pick_client() -> int:
        merged = data["customer_ids"][:3000]
        return rng.choice(merged if rng.random() < 0.3 else data["client_ids"])

    return {
        "client list": lambda: f"{base}/clients/?{lists()}",
        "search": lambda: f"{base}/clients/?{searches()}",
        # A third of the client pages are merged customers (the richest page).
        "client page": lambda: f"{base}/clients/{pick_client()}/",
        "pet page": lambda: f"{base}/pets/{rng.choice(data['pet_ids'])}/",
    }


def measure(http: Any, label: str, make_url: Any, n_requests: int) -> None:
    """Request ``n_requests`` URLs of one kind after a warm-up; print p50/p95/max, CPU p95
    and the most queries any request made."""
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    for _ in range(5):  # warm caches, templates, connections
        http.get(make_url(), secure=True)
    times, cpu, queries, slowest = [], [], 0, ("", 0.0)
    for _ in range(n_requests):
        url = make_url()
        reset_queries()
        with CaptureQueriesContext(connection) as captured:
            started, cpu_started = time.perf_counter(), time.process_time()
            response = http.get(url, secure=True)
            elapsed = (time.perf_counter() - started) * 1000
        cpu.append((time.process_time() - cpu_started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        times.append(elapsed)
        queries = max(queries, len(captured))
        if elapsed > slowest[1]:
            slowest = (url, elapsed)
    times.sort()
    cpu.sort()
    p95 = times[int(len(times) * 0.95) - 1]
    cpu95 = cpu[int(len(cpu) * 0.95) - 1]
    print(
        f"  {label:<12} {statistics.median(times):8.1f} {p95:8.1f} {times[-1]:8.1f} "
        f"{cpu95:8.1f} {queries:8d}   slowest: {slowest[0]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.clients, args.requests)
        return
    print(f"Client pages with {args.clients:,} clients, {args.requests} requests per page")
    with tempfile.TemporaryDirectory(prefix="vetsync-bench-") as tmp:
        for backend in harness.backends(args.backend):
            harness.run_child(
                backend,
                __file__,
                ["--clients", str(args.clients), "--requests", str(args.requests)],
                var_dir=Path(tmp),
                extra_env={"ALLOWED_HOSTS": "testserver"},
            )


if __name__ == "__main__":
    main()
