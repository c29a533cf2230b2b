"""Practice systems to point the agent at, for the demo, the tests and the benchmark.

- ``cornerstone``: a SQLite database shaped like a Cornerstone-like schema (client, patient,
  species and breed code tables, a patient-history table the table writer may insert into);
- ``avimark``: a folder of CSV exports shaped like AVImark's (CLIENT.csv, ANIMAL.csv,
  BREED.csv), dates as MM/DD/YYYY.

    python -m vetsync.agent.demo cornerstone practice.sqlite3 --clients 1000
    python -m vetsync.agent.demo avimark exports/ --clients 200

Deterministic for a given seed. Names come from short built-in lists: no other package.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

FIRST = (  # noqa: SIM905 (a word list reads better as a sentence)
    "Dana Alex Sam Jordan Casey Riley Morgan Jamie Taylor Avery Quinn Harper Rowan Emerson "
    "Maria Jose Wei Aiko Priya Omar Lena Nils Ines Tomas Grace Henry Olivia Noah Emma Liam"
).split()
LAST = (  # noqa: SIM905
    "Whitfield Garcia Nguyen Okafor Schmidt Rossi Novak Larsen Silva Kim Patel Cohen Murphy "
    "Dubois Moreau Jensen Kowalski Tanaka Haddad Ivanova Brennan Ortiz Fischer Sato Walsh"
).split()
PET_NAMES = (  # noqa: SIM905
    "Biscuit Pepper Luna Max Bella Charlie Milo Daisy Rocky Coco Oliver Ruby Teddy Willow "
    "Zeus Nala Loki Maple Olive Juniper Scout Ziggy Hazel Mochi Tofu Pickles Waffles"
).split()
SPECIES = {1: "Canine", 2: "Feline", 3: "Lagomorph"}
BREEDS = {
    10: (1, "Beagle"),
    11: (1, "Labrador Retriever"),
    12: (1, "German Shepherd"),
    13: (1, "Mixed breed"),
    20: (2, "Domestic Shorthair"),
    21: (2, "Maine Coon"),
    30: (3, "Holland Lop"),
}
SEXES = ("MN", "FS", "M", "F")
CITIES = (("Portland", "OR", "972"), ("Salem", "OR", "973"), ("Eugene", "OR", "974"))
STAMP = dt.datetime(2026, 11, 1, 8, 0)

CORNERSTONE_SCHEMA = """
CREATE TABLE client (
    client_id TEXT PRIMARY KEY, first_name TEXT, last_name TEXT, address1 TEXT,
    address2 TEXT, city TEXT, state TEXT, zip_code TEXT, phone_1 TEXT, email TEXT,
    inactive_flag TEXT NOT NULL DEFAULT 'N', last_modified TEXT
);
CREATE TABLE species (species_id INTEGER PRIMARY KEY, description TEXT);
CREATE TABLE breed (breed_id INTEGER PRIMARY KEY, species_id INTEGER, description TEXT);
CREATE TABLE patient (
    patient_id TEXT PRIMARY KEY, client_id TEXT REFERENCES client (client_id), name TEXT,
    species_id INTEGER, breed_id INTEGER, sex TEXT, birth_date TEXT, weight REAL,
    weight_unit TEXT, deceased_flag TEXT NOT NULL DEFAULT 'N', deceased_date TEXT,
    microchip TEXT, inactive_flag TEXT NOT NULL DEFAULT 'N', last_modified TEXT
);
CREATE INDEX patient_client ON patient (client_id);
CREATE TABLE patient_history (
    history_id INTEGER PRIMARY KEY AUTOINCREMENT, patient_id TEXT, client_id TEXT,
    entry_date TEXT, entry_type TEXT, description TEXT, quantity INTEGER,
    vetsync_ref TEXT UNIQUE
);
"""


@dataclass(frozen=True)
class Pet:
    pims_id: str
    client_id: str
    name: str
    species_id: int
    breed_id: int
    sex: str
    birth_date: dt.date
    weight: float


@dataclass(frozen=True)
class Owner:
    pims_id: str
    first_name: str
    last_name: str
    address1: str
    city: str
    state: str
    zip_code: str
    phone: str
    email: str
    pets: tuple[Pet, ...]


def practice(clients: int, seed: int = 7) -> Iterator[Owner]:
    """``clients`` owners with one to three pets each, the same for the same seed."""
    rng = random.Random(seed)
    pet_number = 0
    for n in range(1, clients + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        city, state, zip_prefix = rng.choice(CITIES)
        pets = []
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            pet_number += 1
            breed_id = rng.choice(tuple(BREEDS))
            pets.append(
                Pet(
                    pims_id=f"P-{pet_number}",
                    client_id=f"C-{n}",
                    name=rng.choice(PET_NAMES),
                    species_id=BREEDS[breed_id][0],
                    breed_id=breed_id,
                    sex=rng.choice(SEXES),
                    birth_date=dt.date(2012, 1, 1) + dt.timedelta(days=rng.randrange(4000)),
                    weight=round(rng.uniform(4, 90), 1),
                )
            )
        yield Owner(
            pims_id=f"C-{n}",
            first_name=first,
            last_name=last,
            address1=f"{rng.randrange(1, 9999)} {rng.choice(LAST)} St",
            city=city,
            state=state,
            zip_code=f"{zip_prefix}{rng.randrange(10, 99)}",
            phone=f"503-555-{rng.randrange(10000):04d}",
            email=f"{first}.{last}.{n}@example.org".lower(),
            pets=tuple(pets),
        )


def cornerstone_create(path: Path, *, clients: int, seed: int = 7) -> Path:
    """A Cornerstone-like SQLite database with ``clients`` clients (replaces ``path``)."""
    path.unlink(missing_ok=True)
    db = sqlite3.connect(str(path))
    stamp = STAMP.isoformat(sep=" ")
    with db:
        db.executescript(CORNERSTONE_SCHEMA)
        db.executemany("INSERT INTO species VALUES (?, ?)", SPECIES.items())
        db.executemany(
            "INSERT INTO breed VALUES (?, ?, ?)", [(k, s, d) for k, (s, d) in BREEDS.items()]
        )
        for owner in practice(clients, seed):
            db.execute(
                "INSERT INTO client (client_id, first_name, last_name, address1, address2, city, "
                "state, zip_code, phone_1, email, last_modified) "
                "VALUES (?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?)",
                (
                    owner.pims_id,
                    owner.first_name,
                    owner.last_name,
                    owner.address1,
                    owner.city,
                    owner.state,
                    owner.zip_code,
                    owner.phone,
                    owner.email,
                    stamp,
                ),
            )
            db.executemany(
                "INSERT INTO patient (patient_id, client_id, name, species_id, breed_id, sex, "
                "birth_date, weight, weight_unit, microchip, last_modified) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'LB', '', ?)",
                [
                    (
                        p.pims_id,
                        p.client_id,
                        p.name,
                        p.species_id,
                        p.breed_id,
                        p.sex,
                        p.birth_date.isoformat(),
                        p.weight,
                        stamp,
                    )
                    for p in owner.pets
                ],
            )
    db.close()
    return path


def avimark_write(folder: Path, *, clients: int, seed: int = 7) -> Path:
    """AVImark-like CSV exports of ``clients`` clients in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    owners = list(practice(clients, seed))
    stamp = STAMP.strftime("%m/%d/%Y %H:%M")
    with (folder / "CLIENT.csv").open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(
            ["Client ID", "Last Name", "First Name", "Address", "Address 2", "City", "State",
             "Zip", "Phone", "Email", "Inactive", "Changed"]
        )  # fmt: skip
        for o in owners:
            out.writerow(
                [o.pims_id, o.last_name, o.first_name, o.address1, "", o.city, o.state,
                 o.zip_code, o.phone, o.email, "N", stamp]
            )  # fmt: skip
    with (folder / "BREED.csv").open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["Breed Code", "Breed", "Species"])
        for code, (species_id, breed) in BREEDS.items():
            out.writerow([str(code), breed, SPECIES[species_id]])
    with (folder / "ANIMAL.csv").open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(
            ["Animal ID", "Client ID", "Name", "Breed Code", "Sex", "Birthday", "Weight",
             "Deceased", "Changed"]
        )  # fmt: skip
        for o in owners:
            for p in o.pets:
                out.writerow(
                    [p.pims_id, p.client_id, p.name, str(p.breed_id), p.sex,
                     p.birth_date.strftime("%m/%d/%Y"), f"{p.weight:.1f}", "N", stamp]
                )  # fmt: skip
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vetsync.agent.demo", description=__doc__)
    parser.add_argument("shape", choices=("cornerstone", "avimark"))
    parser.add_argument("target", type=Path, help="the SQLite file, or the CSV folder")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.shape == "cornerstone":
        cornerstone_create(args.target, clients=args.clients, seed=args.seed)
    else:
        avimark_write(args.target, clients=args.clients, seed=args.seed)
    print(f"{args.shape}: {args.clients} clients in {args.target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
