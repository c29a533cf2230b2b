"""Benchmark: Pet Owner Care lookups over 1,000,000 clients in 500 clinics.

Clients (one pet each) are loaded with COPY through psycopg on PostgreSQL (executemany on
SQLite), with the care indexes in place as a running site has them; the load time is printed.
Then 200 lookups, mixed (a name with a typo, alone or with the first name; a phone in some
format; an email; a postcode), each a full GET of /care/?q=… through django.test.Client with
production settings (DEBUG off), audit row included. Target (issue 8): p95 <= 100 ms on
PostgreSQL. SQLite is the embedded fallback and runs a smaller size by default (--sqlite-clients).

    python bench/bench_care_lookup.py [--clients 1000000] [--clinics 500] [--lookups 200]
                                      [--sqlite-clients 100000] [--backend postgres|sqlite|both]

PostgreSQL is used when reachable at BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1
:5432/postgres); a throwaway database is created and dropped. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
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
    "Maria", "James", "Linda", "Robert", "Patricia", "Michael", "Jennifer", "William", "Susan",
    "David", "Karen", "Richard", "Nancy", "Joseph", "Lisa", "Thomas", "Betty", "Charles",
    "Sandra", "Daniel", "Ashley", "Matthew", "Emily", "Anthony", "Donna", "Mark", "Michelle",
    "Priya", "Wei", "Fatima", "Olu", "Sofia",
]  # fmt: skip
# 40 x 30 = 1,200 surnames (about 830 clients each at 1M), so a surname alone matches many.
HEADS = [
    "Whit", "Ok", "Ngu", "Gar", "Smi", "John", "Brow", "Mar", "Cla", "Lew", "Wal", "Hal", "All",
    "Youn", "Kin", "Wri", "Sco", "Gre", "Bak", "Ada", "Nel", "Hil", "Camp", "Mitch", "Rob",
    "Cart", "Phil", "Ander", "Thom", "Hern", "Fitz", "Mac", "Oster", "Pem", "Quar", "Rad",
    "Stan", "Tal", "Vin", "Yar",
]  # fmt: skip
TAILS = [
    "field", "afor", "yen", "cia", "th", "son", "ning", "tin", "rke", "is", "ker", "lett",
    "ston", "bury", "wood", "ley", "ford", "more", "well", "man", "ridge", "ham", "ton",
    "worth", "dale", "brook", "croft", "by", "hurst", "wick",
]  # fmt: skip
SURNAMES = [h + t for h in HEADS for t in TAILS]
PETS = ["Biscuit", "Rex", "Luna", "Milo", "Bella", "Charlie", "Max", "Daisy", "Oliver", "Coco"]
CHUNK = 50_000


def person(i: int) -> tuple[str, str, str, str, str]:
    """Client i's first name, surname, phone digits, email, postcode (deterministic)."""
    rng = random.Random(i)
    first = FIRST[rng.randrange(len(FIRST))]
    last = SURNAMES[rng.randrange(len(SURNAMES))]
    area = 200 + (i * 7919) % 700
    digits = f"{area}{(i * 104729) % 10_000_000:07d}"
    email = f"{first}.{last}{i}@example.org".lower()
    postcode = f"{10000 + (i * 31) % 30000:05d}"
    return first, last, digits, email, postcode


def load(n_clients: int, n_clinics: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import transaction
    from django.utils import timezone

    from clinics.access import CARE_GROUP
    from clinics.models import Clinic
    from records.models import Client, Patient
    from vetsync.lib.bulk import RowInserter

    user = get_user_model().objects.create_user("bench-care", password="x")  # noqa: S106
    user.groups.add(Group.objects.get(name=CARE_GROUP))
    clinics = [
        Clinic.objects.create(name=f"Bench Clinic {c}", slug=f"bench-{c}") for c in range(n_clinics)
    ]
    clinic_ids = [c.pk for c in clinics]
    now = timezone.now()
    started = time.perf_counter()
    for start in range(0, n_clients, CHUNK):
        stop = min(start + CHUNK, n_clients)
        with transaction.atomic():
            inserter = RowInserter(Client)
            for i in range(start, stop):
                first, last, digits, email, postcode = person(i)
                inserter.add(
                    clinic_id=clinic_ids[i % n_clinics],
                    first_name=first,
                    last_name=last,
                    email=email,
                    phone=f"({digits[:3]}) {digits[3:6]}-{digits[6:]}",
                    phone_normalized=f"+1{digits}",
                    address_line1=f"{i % 9000 + 1} Elm St",
                    city="Portland",
                    state="OR",
                    postcode=postcode,
                    country="US",
                    pims_id=f"C-{i}",
                    created_at=now,
                    updated_at=now,
                )
            inserter.flush()
    clients_done = time.perf_counter()
    id_rows = (
        Client.objects.order_by("pk").values_list("pk", "clinic_id").iterator(chunk_size=CHUNK)
    )
    pets = RowInserter(Patient)
    for n, (client_id, clinic_id) in enumerate(id_rows):
        pets.add(
            clinic_id=clinic_id,
            client_id=client_id,
            name=PETS[n % len(PETS)],
            species="Canine" if n % 3 else "Feline",
            created_at=now,
            updated_at=now,
        )
        if len(pets) >= CHUNK:
            with transaction.atomic():
                pets.flush()
    with transaction.atomic():
        pets.flush()
    done = time.perf_counter()
    print(
        f"  loaded {n_clients:,} clients over {n_clinics} clinics in "
        f"{clients_done - started:.1f} s (indexes maintained during the load), "
        f"{n_clients:,} pets in {done - clients_done:.1f} s"
    )
    return {"user_id": user.pk}


def typo(word: str, rng: random.Random) -> str:
    """A misspelling people make: two neighbouring letters swapped, or one doubled/dropped."""
    i = rng.randrange(1, len(word) - 2)
    kind = rng.randrange(3)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[: i + 1] + word[i] + word[i + 1 :]
    return word[:i] + word[i + 1 :]


def prepare(n_clients: int, n_clinics: int) -> dict[str, Any]:
    """Migrate, load the clinics, gather statistics and refresh the name dictionary as a
    running site does (Celery beat, every few minutes)."""
    from django.core.management import call_command
    from django.db import connection

    from records.care import care_name_tokens_refresh

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)  # pages as production serves
    data = load(n_clients, n_clinics)
    analyze = "VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE"
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(analyze)
    print(f"  {analyze}: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    care_name_tokens_refresh()
    print(f"  name dictionary refresh: {time.perf_counter() - started:.1f} s")
    return data


def care_browser(user_id: int) -> Any:
    """A test client logged in as the Care user, past the second factor as a person is."""
    from django.contrib.auth import get_user_model
    from django.test import Client as HttpClient
    from django.urls import reverse

    from tests.two_factor import second_factor_code

    http = HttpClient()
    care_user = get_user_model().objects.get(pk=user_id)
    http.force_login(care_user)
    verified = http.post(
        reverse("two-factor-verify"), {"token": second_factor_code(care_user)}, secure=True
    )
    assert verified.status_code == 302, "the second factor was refused"
    return http


def lookups(n_clients: int, rng: random.Random) -> Iterator[tuple[str, str]]:
    """What Care staff type: a misspelt surname (with or without the first name), a phone in
    any format, an email (sometimes in capitals) or a postcode."""
    while True:
        first, last, digits, email, postcode = person(rng.randrange(n_clients))
        kind = rng.choice(["name", "name", "phone", "email", "postcode"])
        if kind == "name":
            misspelt = typo(last, rng)
            yield kind, misspelt if rng.random() < 0.5 else f"{first} {misspelt}"
        elif kind == "phone":
            formats = [
                f"({digits[:3]}) {digits[3:6]}-{digits[6:]}",
                f"{digits[:3]}.{digits[3:6]}.{digits[6:]}",
                f"+1 {digits[:3]} {digits[3:6]} {digits[6:]}",
                digits,
            ]
            yield kind, rng.choice(formats)
        elif kind == "email":
            yield kind, email.upper() if rng.random() < 0.2 else email
        else:
            yield kind, postcode


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * 0.95) - 1)]


def child(n_clients: int, n_clinics: int, n_lookups: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vetsync.settings")
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    data = prepare(n_clients, n_clinics)
    http = care_browser(data["user_id"])
    asked = lookups(n_clients, random.Random(8))
    for _ in range(5):  # warm caches, templates, connections
        http.get("/care/", {"q": next(asked)[1]}, secure=True)
    times: dict[str, list[float]] = {}
    queries, found, slowest = 0, 0, ("", 0.0)
    for _ in range(n_lookups):
        kind, q = next(asked)
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = http.get("/care/", {"q": q}, secure=True)
            elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (q, response.status_code)
        found += 'data-testid="care-results"' in response.text
        times.setdefault(kind, []).append(elapsed)
        queries = max(queries, len(captured))
        slowest = max(slowest, (q, elapsed), key=lambda pair: pair[1])
    print(f"  {'lookup':<10} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for kind, values in [*sorted(times.items()), ("all", [t for ts in times.values() for t in ts])]:
        target = "   (target p95 <= 100 ms)" if kind == "all" else ""
        print(
            f"  {kind:<10} {len(values):4d} {statistics.median(values):8.1f} "
            f"{p95(values):8.1f} {max(values):8.1f}{target}"
        )
    print(
        f"  {found}/{n_lookups} lookups found their client(s); at most {queries} queries per "
        f"request; slowest: {slowest[0]!r} ({slowest[1]:.0f} ms); database: {connection.vendor}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--sqlite-clients", type=int, default=100_000)
    parser.add_argument("--clinics", type=int, default=500)
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.clients, args.clinics, args.lookups)
        return
    with tempfile.TemporaryDirectory(prefix="vetsync-bench-care-") as tmp:
        for backend in harness.backends(args.backend):
            n = args.clients if backend == "postgres" else args.sqlite_clients
            print(f"{backend}: {n:,} clients, {args.clinics} clinics, {args.lookups} lookups")
            harness.run_child(
                backend,
                __file__,
                [
                    "--clients",
                    str(n),
                    "--clinics",
                    str(args.clinics),
                    "--lookups",
                    str(args.lookups),
                ],
                var_dir=Path(tmp),
                extra_env={"ALLOWED_HOSTS": "testserver"},
            )


if __name__ == "__main__":
    main()
