"""Benchmark: first copy and delta of a big clinic through the sync engine.

A generated batch of 100,000 clients with 150,000 pets goes into an empty clinic that already
has 20,000 home-delivery customers (3,000 of them the same people as PIMS clients, with typos),
then a delta batch with 1 % of the clients changed. Targets (issue 19, item 4): first copy
<= 10 s on PostgreSQL and <= 15 s on SQLite, at most 4x a bare COPY of the same client and pet
rows into the same tables with the same indexes (printed from the same run); delta <= 1 s;
peak memory <= 500 MB.

    python bench/bench_sync_first_copy.py [--clients 100000 | --quick]
        [--backend sqlite|postgres|both]

PostgreSQL is used when reachable at BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1
:5432/postgres); a throwaway database is created and dropped. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import harness  # noqa: E402  (bench/ is put on the path just above)
from fleet_measure import peak_rss_mib  # noqa: E402

FIRST = [
    "Dana",
    "Sam",
    "Alex",
    "Jordan",
    "Taylor",
    "Morgan",
    "Casey",
    "Riley",
    "Jamie",
    "Avery",
    "Quinn",
    "Harper",
    "Rowan",
    "Emerson",
    "Finley",
    "Hayden",
    "Parker",
    "Reese",
    "Skyler",
    "Blake",
    "Cameron",
    "Drew",
    "Elliot",
    "Frankie",
    "Gray",
    "Jesse",
    "Kendall",
    "Logan",
]
LAST = [
    "Whitfield",
    "Okafor",
    "Nguyen",
    "Garcia",
    "Smith",
    "Johnson",
    "Brown",
    "Lee",
    "Martin",
    "Clark",
    "Lewis",
    "Walker",
    "Hall",
    "Allen",
    "Young",
    "King",
    "Wright",
    "Scott",
    "Green",
    "Baker",
    "Adams",
    "Nelson",
    "Hill",
    "Campbell",
    "Mitchell",
    "Roberts",
    "Carter",
    "Phillips",
]
PETS = ["Biscuit", "Rex", "Luna", "Milo", "Bella", "Charlie", "Max", "Daisy", "Oliver", "Coco"]
SPECIES = [
    ("Canine", "Beagle"),
    ("Canine", "Labrador"),
    ("Feline", "Domestic Shorthair"),
    ("Feline", "Siamese"),
    ("Canine", "Poodle"),
]
STREETS = ["Alder St", "Birch Ave", "Cedar Rd", "Elm St", "Maple Dr", "Oak Ln", "Pine Ct"]


def typo(rng: random.Random, word: str) -> str:
    i = rng.randrange(1, len(word))
    return word[:i] + word[i + 1 :] if rng.random() < 0.5 else word[:i] + word[i] + word[i:]


def make_pet(rng: random.Random, number: int) -> dict[str, Any]:
    species, breed = rng.choice(SPECIES)
    return {
        "pims_id": f"P-{number}",
        "name": rng.choice(PETS),
        "species": species,
        "breed": breed,
        "sex": rng.choice(["Female spayed", "Male neutered"]),
        "birth_date": (
            f"{rng.randint(2008, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        ),
        "weight": round(rng.uniform(2, 45), 1),
        "weight_unit": "kg",
        "deceased": False,
        "deceased_on": None,
        "active": True,
        "modified_at": "2026-11-20T10:00:00Z",
    }


def make_clients(rng: random.Random, n_clients: int) -> list[dict[str, Any]]:
    """The PIMS's clients, 1.5 pets each."""
    clients = []
    pet_counter = 0
    for i in range(n_clients):
        pets = []
        for _ in range(1 if i % 2 else 2):
            pets.append(make_pet(rng, pet_counter))
            pet_counter += 1
        first, last = rng.choice(FIRST), rng.choice(LAST)
        clients.append(
            {
                "pims_id": f"C-{i}",
                "first_name": first,
                "last_name": f"{last}{i % 997}",
                "email": f"owner{i}@example.org",
                "phone": f"503{i:07d}",
                "address": {
                    "line1": f"{i % 9000 + 1} {rng.choice(STREETS)}",
                    "line2": "",
                    "city": "Portland",
                    "state": "OR",
                    "postcode": f"97{i % 300:03d}",
                    "country": "US",
                },
                "active": True,
                "modified_at": "2026-11-20T10:00:00Z",
                "patients": pets,
            }
        )
    return clients


def make_customers(rng: random.Random, clients: list[dict[str, Any]]) -> list[str]:
    """20,000 home-delivery customers as CSV lines; 3,000 are PIMS clients with a typo in the
    name and the same email or phone (formatted differently), the rest are strangers."""
    customers = [
        "customer_ref,first_name,last_name,email,phone,line1,line2,city,state,postcode,pet_names"
    ]
    matched = rng.sample(range(len(clients)), min(3000, len(clients)))
    for k, i in enumerate(matched):
        c = clients[i]
        email = c["email"] if k % 2 == 0 else ""
        phone = f"({c['phone'][:3]}) {c['phone'][3:6]}-{c['phone'][6:]}" if k % 2 else ""
        pets = ";".join(p["name"] for p in c["patients"])
        customers.append(
            f"HD-{k},{c['first_name']},{typo(rng, c['last_name'])},{email},{phone},"
            f"{c['address']['line1']},,Portland,OR,{c['address']['postcode']},{pets}"
        )
    for k in range(len(matched), 20000):
        customers.append(
            f"HD-{k},{rng.choice(FIRST)},Stranger{k},hd{k}@shop.example,,{k} Store Rd,,Salem,OR,"
            f"97{k % 300:03d},{rng.choice(PETS)}"
        )
    return customers


def make_delta(rng: random.Random, clients: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """1 % of the clients changed: an email, a first name, an address or nothing of the
    client's own, and every pet weighed again."""
    changed = rng.sample(range(len(clients)), len(clients) // 100)
    delta = []
    for j, i in enumerate(changed):
        c = json.loads(json.dumps(clients[i]))
        c["modified_at"] = "2026-11-24T10:00:00Z"
        kind = j % 4
        if kind == 0:
            c["email"] = f"new{i}@example.net"
        elif kind == 1:
            c["first_name"] += "ne"
        elif kind == 2:
            c["address"]["line1"] = f"{i} New Rd"
        for p in c["patients"]:
            p["weight"] = round(p["weight"] + 0.5, 1)
            p["modified_at"] = "2026-11-24T10:00:00Z"
        delta.append(c)
    return delta


def write_batch(
    path: Path, batch_id: str, sent_at: str, clients: list[dict[str, Any]], *, full: bool
) -> None:
    envelope = {"source": "syncvet", "batch_id": batch_id, "sent_at": sent_at, "full": full}
    path.write_text(json.dumps({**envelope, "clients": clients}))


def make_batches(n_clients: int, seed: int, out: Path) -> tuple[Path, Path, Path]:
    rng = random.Random(seed)
    clients = make_clients(rng, n_clients)
    customers = make_customers(rng, clients)
    first_path, delta_path, csv_path = out / "first.json", out / "delta.json", out / "customers.csv"
    write_batch(first_path, "bench-first", "2026-11-20T10:05:00Z", clients, full=True)
    csv_path.write_text("\n".join(customers) + "\n")
    delta = make_delta(rng, clients)
    write_batch(delta_path, "bench-delta", "2026-11-24T10:05:00Z", delta, full=False)
    return first_path, delta_path, csv_path


def _floor_rows(
    model: Any, clinic_id: int, floor_clinic_id: int, offset: int
) -> tuple[list[str], str]:
    """The columns of ``model`` and a SELECT giving the clinic's rows as another clinic's,
    with new ids (``offset`` added to every id and reference to a row of the same copy)."""
    shifted = {"id", "client_id", "merged_into_id"}
    columns = [f.column for f in model._meta.concrete_fields]
    exprs = [
        f"{floor_clinic_id}" if c == "clinic_id" else f"{c} + {offset}" if c in shifted else c
        for c in columns
    ]
    table = model._meta.db_table
    query = (
        f"SELECT {', '.join(exprs)} FROM {table} "
        f"WHERE clinic_id = {clinic_id} AND pims_id <> '' ORDER BY id"
    )
    return columns, query


def index_counts() -> str:
    """The indexes the floor and the first copy both maintain (search indexes included)."""
    from django.db import connection

    from records.models import Client, Patient

    counts = []
    for model in (Client, Patient):
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
        counts.append(sum(1 for c in constraints.values() if c["index"]))
    return f"{counts[0]} indexes on clients, {counts[1]} on pets"


def bare_copy(clinic_id: int) -> tuple[int, float]:
    """The floor: the clients and pets of the PIMS (the batch's rows, as the first copy left
    them), written again as another clinic's
    into the same tables (every index in place) by the database's fastest bulk path (COPY on
    PostgreSQL, one executemany transaction on SQLite). Returns (rows, seconds)."""
    import io

    from django.db import connection, transaction

    from clinics.models import Clinic
    from records.models import Client, Patient

    floor = Clinic.objects.create(name="Bench floor", slug=f"bench-floor-{os.getpid()}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(id) FROM records_client")
        offset = max(cursor.fetchone()[0] or 0, 10_000_000)
        cursor.execute("SELECT max(id) FROM records_patient")
        offset = max(offset, cursor.fetchone()[0] or 0) + 1
    work = [_floor_rows(m, clinic_id, floor.pk, offset) for m in (Client, Patient)]
    loaded: list[tuple[str, list[str], Any]] = []
    rows = 0
    with connection.cursor() as cursor:
        for (columns, query), model in zip(work, (Client, Patient), strict=True):
            if connection.vendor == "postgresql":
                buffer = io.BytesIO()
                with cursor.cursor.copy(f"COPY ({query}) TO STDOUT") as copy:
                    for data in copy:
                        buffer.write(data)
                rows += buffer.getvalue().count(b"\n")
                loaded.append((model._meta.db_table, columns, buffer.getvalue()))
            else:
                cursor.execute(query)
                data = cursor.fetchall()
                rows += len(data)
                loaded.append((model._meta.db_table, columns, data))
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for table, columns, data in loaded:
            names = ", ".join(columns)
            if connection.vendor == "postgresql":
                with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    copy.write(data)
            else:
                marks = ", ".join("%s" for _ in columns)
                cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", data)
    return rows, time.perf_counter() - started


def settle() -> None:
    """Start a measured phase with nothing of the last one still to write out: PostgreSQL's
    changed buffers checkpointed, SQLite's log folded into its file. The first copy, the delta
    and the floor each start so (a checkpoint the previous phase left due otherwise lands in
    the next one: the same first copy measured 24 and 38 s)."""
    from django.db import DatabaseError, connection

    try:
        with connection.cursor() as cursor:
            postgres = connection.vendor == "postgresql"
            cursor.execute("CHECKPOINT" if postgres else "PRAGMA wal_checkpoint(TRUNCATE)")
    except DatabaseError as exc:  # CHECKPOINT needs a superuser (or pg_checkpoint)
        print(f"  (not settled: {exc})")


def peak_rss_reset() -> None:
    """Start this process's peak resident set (VmHWM) again from its current size (Linux)."""
    Path("/proc/self/clear_refs").write_text("5")


def child(first: Path, delta: Path, customers_csv: Path) -> None:
    """Runs in its own process, on the database the environment names."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vetsync.settings")
    import django

    django.setup()
    import csv

    from django.core.management import call_command
    from django.db import connection

    from clinics.models import Clinic, Connector, Integration
    from records.models import SyncRun
    from records.services import customers_import
    from records.sync import sync_run_create, sync_run_process

    call_command("migrate", verbosity=0)
    clinic = Clinic.objects.create(name="Bench Clinic", slug=f"bench-{os.getpid()}")
    Integration.objects.create(clinic=clinic, connector=Connector.SYNCVET, status="live")
    with customers_csv.open() as handle:
        result = customers_import(clinic=clinic, rows=csv.DictReader(handle))
    print(f"  customers imported: {result.created:,}")

    timings: dict[str, float] = {}
    for label, path in (("first copy", first), ("delta (1 %)", delta)):
        body = path.read_text()
        settle()
        started = time.perf_counter()
        created, _ = sync_run_create(clinic=clinic, body=body, trigger=SyncRun.Trigger.COMMAND)
        stored = time.perf_counter() - started
        stored_peak = peak_rss_mib(os.getpid())
        run_id = created.pk
        del body, created  # a worker starts without the text the batch was sent as
        # The web process stores a batch and a worker applies it: each peak is its own (the
        # applying one from what storing left in this process).
        peak_rss_reset()
        run = sync_run_process(run_id=run_id)
        elapsed = time.perf_counter() - started
        timings[label] = elapsed
        records = sum(run.counts.values())
        print(
            f"  {label}: {run.total:,} clients, {records:,} records in {elapsed:.1f} s "
            f"(batch stored in {stored:.1f} s), {records / elapsed:,.0f} records/s; "
            f"peak RSS storing {stored_peak:.0f} MB, applying {peak_rss_mib(os.getpid()):.0f} MB"
        )
        print(f"    outcomes: {json.dumps(dict(sorted(run.counts.items())))}")
    settle()
    rows, floor = bare_copy(clinic.pk)
    print(
        f"  bare {'COPY' if connection.vendor == 'postgresql' else 'executemany'} of the same "
        f"{rows:,} client and pet rows into the same tables, every index in place "
        f"({index_counts()}): {floor:.1f} s; first copy / bare = "
        f"{timings['first copy'] / floor:.1f}x"
    )
    print(f"  database: {connection.vendor}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="2,000 clients (CI)")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--child", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.quick:
        args.clients = 2000
    with tempfile.TemporaryDirectory(prefix="vetsync-bench-") as tmp:
        tmpdir = Path(tmp)
        started = time.perf_counter()
        paths = make_batches(args.clients, seed=7, out=tmpdir)
        print(f"Generated {args.clients:,} clients in {time.perf_counter() - started:.1f} s")
        for backend in harness.backends(args.backend):
            harness.run_child(backend, __file__, [str(p) for p in paths], var_dir=tmpdir)


if __name__ == "__main__":
    main()
