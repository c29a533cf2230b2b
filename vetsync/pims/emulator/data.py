"""Seeded, realistic demo data for the emulated ezyVet site, already in v1 wire shape.

Every scalar is stored as the string ezyVet would send, so the server only copies records out;
list fields (``contact_detail_list``) are lists of string ids. Dates of birth and death are
epoch seconds at local midnight of the site's time zone, which is how ezyVet v1 stores dates.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Record = dict[str, object]
Table = dict[str, Record]  # id (string) -> record, kept in ascending id order

RESOURCES = (
    "contact",
    "address",
    "contactdetail",
    "contactdetailtype",
    "animal",
    "species",
    "breed",
    "sex",
    "user",
    "consult",
)

CONSULT_REASONS = (
    "Annual wellness exam",
    "Lameness, left hind leg",
    "Itchy skin and ear infection",
    "Vomiting for two days",
    "Dental check",
    "Weight loss, increased thirst",
    "Post-operative recheck",
    "Vaccination",
)

CONTACT_DETAIL_TYPES = ("Phone", "Mobile", "Email", "Fax", "Website", "After Hours")

SPECIES_BREEDS: dict[str, tuple[str, ...]] = {
    "Canine": (
        "Labrador Retriever",
        "Golden Retriever",
        "German Shepherd",
        "Beagle",
        "Bulldog",
        "Poodle",
        "Dachshund",
        "Border Collie",
        "Boxer",
        "Siberian Husky",
        "Cavalier King Charles Spaniel",
        "Shih Tzu",
        "Australian Shepherd",
        "Chihuahua",
        "Mixed Breed",
    ),
    "Feline": (
        "Domestic Shorthair",
        "Domestic Longhair",
        "Siamese",
        "Maine Coon",
        "Persian",
        "Ragdoll",
        "Bengal",
        "British Shorthair",
    ),
    "Lagomorph": ("Holland Lop", "Netherland Dwarf", "Mini Rex", "Lionhead"),
    "Avian": ("Budgerigar", "Cockatiel", "African Grey", "Canary"),
    "Equine": ("Quarter Horse", "Thoroughbred", "Arabian", "Shetland Pony"),
}
# How common each species is among pets, and their usual adult weight range in kg.
SPECIES_WEIGHTS = {"Canine": 55, "Feline": 35, "Lagomorph": 5, "Avian": 3, "Equine": 2}
SPECIES_KG = {
    "Canine": (2.0, 48.0),
    "Feline": (2.5, 8.0),
    "Lagomorph": (0.9, 3.5),
    "Avian": (0.03, 0.6),
    "Equine": (180.0, 600.0),
}
SEXES = ("Male", "Female", "Male Neutered", "Female Spayed", "Unknown")

FIRST_NAMES = (
    "Dana", "Alex", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn",
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "James", "Isabella", "Lucas",
    "Mia", "Mason", "Amelia", "Ethan", "Harper", "Logan", "Evelyn", "Aiden", "Abigail", "Jack",
    "Emily", "Henry", "Ella", "Sebastian", "Scarlett", "Owen", "Grace", "Samuel", "Chloe", "Leo",
    "Maria", "José", "Chen", "Wei", "Priya", "Arjun", "Fatima", "Omar", "Aisha", "Hiroshi",
    "Yuki", "Siobhan", "Niamh", "Seán", "Zoë", "Renée", "Mateo", "Camila", "Diego", "Lucía",
)  # fmt: skip
LAST_NAMES = (
    "Whitfield", "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas",
    "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris",
    "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King",
    "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker",
    "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "O'Brien", "McAllister", "Van der Berg",
    "Kowalski", "Nakamura", "Patel", "Singh", "Okafor", "Müller", "Dubois", "Rossi",
)  # fmt: skip
BUSINESS_NAMES = (
    "Greenfield Kennels", "Riverbend Stables", "Happy Tails Rescue", "Sunny Acres Farm",
    "Cedar Ridge Cattery", "Paws & Claws Shelter", "Blue Sky Equestrian", "Hilltop Boarding",
)  # fmt: skip
PET_NAMES = (
    "Biscuit", "Bella", "Max", "Luna", "Charlie", "Lucy", "Cooper", "Daisy", "Milo", "Bailey",
    "Rocky", "Sadie", "Tucker", "Molly", "Bear", "Stella", "Duke", "Zoe", "Oliver", "Chloe",
    "Leo", "Penny", "Winston", "Rosie", "Gus", "Ruby", "Finn", "Willow", "Oscar", "Pepper",
    "Simba", "Nala", "Ziggy", "Mochi", "Pickles", "Waffles", "Peanut", "Ginger", "Shadow", "Smokey",
    "Thor", "Koda", "Hazel", "Maple", "Juniper", "Olive", "Clover", "Bruno", "Marley", "Tilly",
)  # fmt: skip
STREETS = (
    "Alder St", "Oak Ave", "Maple Dr", "Cedar Ln", "Pine St", "Elm St", "Birch Rd", "Willow Way",
    "Main St", "Park Ave", "Lakeview Dr", "Hillcrest Rd", "Sunset Blvd", "River Rd", "Ridge Ct",
    "Meadow Ln", "Spruce St", "Aspen Pl", "Juniper Ct", "Magnolia Ave",
)  # fmt: skip
CITIES = (
    ("Portland", "OR", "972"), ("Seattle", "WA", "981"), ("Boise", "ID", "837"),
    ("Austin", "TX", "787"), ("Denver", "CO", "802"), ("Madison", "WI", "537"),
    ("Chicago", "IL", "606"), ("Nashville", "TN", "372"), ("Raleigh", "NC", "276"),
    ("Burlington", "VT", "054"),
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example")
VETS = (("Dr", "Helen", "Marsh"), ("Dr", "Rahul", "Iyer"), ("Dr", "Grace", "Okonkwo"))
OTHER_STAFF = (("", "Tom", "Reilly"), ("", "Ana", "Souza"), ("", "Beth", "Carver"))
US_COUNTRY_ID = "233"  # the site's only country; ezyVet ids are site data, not ISO codes


def site_zone(name: str) -> dt.tzinfo:
    """The site's time zone; UTC where the platform has no tz database (e.g. bare Windows)."""
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError:
        return dt.UTC


def epoch(moment: dt.datetime) -> str:
    return str(int(moment.timestamp()))


def local_midnight(day: dt.date, zone: dt.tzinfo) -> str:
    return epoch(dt.datetime.combine(day, dt.time(), tzinfo=zone))


@dataclass
class SiteData:
    """The site's tables and id counters. Mutated only under the site's lock."""

    tables: dict[str, Table] = field(default_factory=lambda: {name: {} for name in RESOURCES})
    next_ids: dict[str, int] = field(default_factory=dict)
    vet_user_ids: list[str] = field(default_factory=list)
    detail_type_ids: dict[str, str] = field(default_factory=dict)
    # Bumped on every write, so cached filter indexes know they are stale.
    version: int = 0
    indexes: dict[tuple[str, str], tuple[int, dict[object, list[Record]]]] = field(
        default_factory=dict
    )

    def add(self, resource: str, record: Record) -> Record:
        new_id = self.next_ids.get(resource, 1)
        self.next_ids[resource] = new_id + 1
        record = {"id": str(new_id), **record}
        self.tables.setdefault(resource, {})[str(new_id)] = record
        self.version += 1
        return record

    def changed(self) -> None:
        self.version += 1


class DataGenerator:
    """Builds a site and new records for it; one seeded ``random.Random`` makes runs repeatable."""

    def __init__(self, data: SiteData, rng: random.Random, zone: dt.tzinfo) -> None:
        self.data = data
        self.rng = rng
        self.zone = zone

    def stamp(self, created: dt.datetime, modified: dt.datetime | None = None) -> Record:
        return {
            "active": "1",
            "created_at": epoch(created),
            "modified_at": epoch(modified or created),
        }

    def build(self, clients: int, now: dt.datetime) -> None:
        """A whole site: reference tables, staff, suppliers, ``clients`` pet owners, consults."""
        # Everything generated predates "now" by at least an hour, so a pull that starts at
        # once sees all of it as history and only later mutations as changes.
        origin = now - dt.timedelta(days=3 * 365)
        settled = now - dt.timedelta(hours=1)
        add = self.data.add
        for name in CONTACT_DETAIL_TYPES:
            record = add("contactdetailtype", {**self.stamp(origin), "name": name})
            self.data.detail_type_ids[name] = str(record["id"])
        breed_ids: dict[str, list[str]] = {}
        for species, breeds in SPECIES_BREEDS.items():
            species_id = str(add("species", {**self.stamp(origin), "name": species})["id"])
            breed_ids[species_id] = [
                str(add("breed", {**self.stamp(origin), "name": b, "species_id": species_id})["id"])
                for b in breeds
            ]
        self.breed_ids = breed_ids
        for name in SEXES:
            add("sex", {**self.stamp(origin), "name": name})

        for title, first, last in VETS + OTHER_STAFF:
            is_vet = (title, first, last) in VETS
            contact = self.new_contact(
                origin, first=first, last=last, customer=False, vet=is_vet, staff=True
            )
            user = add(
                "user",
                {
                    **self.stamp(origin),
                    "title": title,
                    "first_name": first,
                    "last_name": last,
                    "email": f"{first}.{last}@clinic.example".lower(),
                    "contact_id": contact["id"],
                },
            )
            if is_vet:
                self.data.vet_user_ids.append(str(user["id"]))
        for name in ("Midwest Veterinary Supply", "Pacific Pharma Distributors"):
            self.new_contact(origin, business=name, customer=False, supplier=True)

        span = (settled - origin).total_seconds()
        for n in range(clients):
            created = origin + dt.timedelta(seconds=span * n / max(clients, 1))
            modified = created + dt.timedelta(
                seconds=self.rng.uniform(0, (settled - created).total_seconds())
            )
            self.new_client(created, modified, settled)

    def new_contact(
        self,
        when: dt.datetime,
        *,
        first: str = "",
        last: str = "",
        business: str = "",
        customer: bool = True,
        vet: bool = False,
        staff: bool = False,
        supplier: bool = False,
        modified: dt.datetime | None = None,
    ) -> Record:
        physical, postal = self._new_addresses(when, modified)
        contact = self.data.add(
            "contact",
            {
                **self.stamp(when, modified),
                "code": "",
                "first_name": first,
                "last_name": last,
                "business_name": business,
                "is_business": "1" if business else "0",
                "is_customer": "1" if customer else "0",
                "is_supplier": "1" if supplier else "0",
                "is_vet": "1" if vet else "0",
                "is_staff_member": "1" if staff else "0",
                "contact_detail_list": [],
                "address_physical": physical["id"],
                "address_postal": postal["id"],
            },
        )
        contact["code"] = f"C{int(str(contact['id'])):06d}"
        self._new_details(contact, first or business or "owner", last or "home", when, modified)
        return contact

    def _new_addresses(
        self, when: dt.datetime, modified: dt.datetime | None
    ) -> tuple[Record, Record]:
        """A physical address, and the postal one: the same, or now and then a PO box."""
        rng = self.rng
        city, state, zip_prefix = rng.choice(CITIES)
        physical = self.data.add(
            "address",
            {
                **self.stamp(when, modified),
                "street_1": f"{rng.randint(1, 9999)} {rng.choice(STREETS)}",
                "street_2": rng.choice(("", "", "", "", f"Apt {rng.randint(1, 40)}", "Unit B")),
                "suburb": "",
                "city": city,
                "region": "",
                "post_code": f"{zip_prefix}{rng.randint(0, 99):02d}",
                "state": state,
                "country_id": US_COUNTRY_ID,
            },
        )
        postal = physical
        if rng.random() < 0.04:  # a few get mail at a PO box
            postal = self.data.add(
                "address",
                {
                    **self.stamp(when, modified),
                    "street_1": f"PO Box {rng.randint(100, 9999)}",
                    "street_2": "",
                    "suburb": "",
                    "city": city,
                    "region": "",
                    "post_code": physical["post_code"],
                    "state": state,
                    "country_id": US_COUNTRY_ID,
                },
            )
        return physical, postal

    def _new_details(
        self,
        contact: Record,
        name: str,
        surname: str,
        when: dt.datetime,
        modified: dt.datetime | None,
    ) -> None:
        """The contact's mobile, email and phone, each most of the time; ``name`` and
        ``surname`` make the email address."""
        rng = self.rng
        details: list[tuple[str, str, bool]] = []
        handle = name.lower().replace(" ", "").replace("'", "")
        tail = surname.lower().replace(" ", "").replace("'", "")
        if rng.random() < 0.95:
            details.append(("Mobile", self.phone(), True))
        if rng.random() < 0.8:
            if rng.random() < 0.06:  # an old address kept inactive, as clinics do
                details.append(("Email", f"{handle}{rng.randint(1, 99)}@oldmail.example", False))
            domain = rng.choice(EMAIL_DOMAINS)
            details.append(("Email", f"{handle}.{tail}{rng.randint(1, 999)}@{domain}", True))
        if rng.random() < 0.2:
            details.append(("Phone", self.phone(), True))
        for kind, value, active in details:
            detail = self.data.add(
                "contactdetail",
                {
                    **self.stamp(when, modified),
                    "contact_id": contact["id"],
                    "name": kind,
                    "value": value,
                    "contact_detail_type_id": self.data.detail_type_ids[kind],
                    "preferred": "1" if kind != "Phone" else "0",
                },
            )
            if not active:
                detail["active"] = "0"
            contact_details = contact["contact_detail_list"]
            assert isinstance(contact_details, list)
            contact_details.append(detail["id"])

    def phone(self) -> str:
        area, line = self.rng.randint(201, 989), self.rng.randint(100, 199)
        # ezyVet stores what staff typed, so formats vary.
        pattern = self.rng.choice(
            ("({a}) 555-0{l}", "{a}-555-0{l}", "+1 {a} 555 0{l}", "{a}5550{l}")
        )
        return pattern.format(a=area, l=line)

    def new_client(self, created: dt.datetime, modified: dt.datetime, settled: dt.datetime) -> str:
        rng = self.rng
        if rng.random() < 0.03:
            contact = self.new_contact(
                created, business=rng.choice(BUSINESS_NAMES), modified=modified
            )
        else:
            contact = self.new_contact(
                created,
                first=rng.choice(FIRST_NAMES),
                last=rng.choice(LAST_NAMES),
                modified=modified,
            )
        if rng.random() < 0.02:
            contact["active"] = "0"
        for _ in range(rng.choices((1, 2, 3), weights=(60, 28, 12))[0]):
            self.new_animal(str(contact["id"]), created, modified, settled)
        return str(contact["id"])

    def new_animal(
        self, contact_id: str, created: dt.datetime, modified: dt.datetime, settled: dt.datetime
    ) -> Record:
        rng = self.rng
        species = rng.choices(list(SPECIES_WEIGHTS), weights=list(SPECIES_WEIGHTS.values()))[0]
        species_id = next(
            str(r["id"]) for r in self.data.tables["species"].values() if r["name"] == species
        )
        sex_id = str(rng.randint(1, len(SEXES)))
        today = settled.astimezone(self.zone).date()
        birth = today - dt.timedelta(days=rng.randint(60, 18 * 365))
        low, high = SPECIES_KG[species]
        kg = rng.uniform(low, high)
        weight, unit = (f"{kg:.2f}", "kg")
        if rng.random() < 0.1:  # some clinics weigh in pounds
            weight, unit = (f"{kg * 2.20462:.1f}", "lb")
        if rng.random() < 0.03:
            weight = ""
        dead = rng.random() < 0.03
        death_day = today - dt.timedelta(days=rng.randint(0, max(0, (today - birth).days - 1)))
        return self.data.add(
            "animal",
            {
                **self.stamp(created, modified),
                "name": rng.choice(PET_NAMES),
                "contact_id": contact_id,
                "species_id": species_id,
                "breed_id": rng.choice(self.breed_ids[species_id]),
                "sex_id": sex_id,
                "date_of_birth": "" if rng.random() < 0.04 else local_midnight(birth, self.zone),
                "is_estimated_date_of_birth": "1" if rng.random() < 0.1 else "0",
                "weight": weight,
                "weight_unit": unit,
                "is_dead": "1" if dead else "0",
                "date_of_death": local_midnight(death_day, self.zone) if dead else "",
                "microchip_number": (
                    "".join(rng.choice("0123456789") for _ in range(15))
                    if rng.random() < 0.6
                    else ""
                ),
            },
        )

    def consults(self, now: dt.datetime, per_animal: Callable[[], int]) -> None:
        """Clinical records the vets wrote, so an Rx can be attached to a real consult."""
        for animal in list(self.data.tables["animal"].values()):
            for _ in range(per_animal()):
                when = now - dt.timedelta(days=self.rng.randint(1, 700))
                record = self.data.add(
                    "consult",
                    {
                        **self.stamp(when),
                        "animal_id": animal["id"],
                        "vet_id": self.rng.choice(self.data.vet_user_ids),
                        "date": epoch(when),
                    },
                )
                # What the visit was for [inferred: the consult's ``description``]; from the
                # id rather than the generator, so the rest of the site stays as it was.
                reason = CONSULT_REASONS[int(str(record["id"])) % len(CONSULT_REASONS)]
                record["description"] = reason
