"""What clinic staff do to a site's records between two pulls: edit a record, add clients
and pets, or a day's worth of plausible random changes; each bumps ``modified_at``.

The site calls these under its lock."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable, Mapping
from typing import Any

from vetsync.pims.emulator.data import (
    EMAIL_DOMAINS,
    FIRST_NAMES,
    LAST_NAMES,
    PET_NAMES,
    STREETS,
    DataGenerator,
    Record,
    SiteData,
    local_midnight,
)
from vetsync.pims.emulator.reply import _json
from vetsync.pims.emulator.schema import FIELDS


class ClinicEdits:
    """Changes to one site's data, drawn from the site's own stream of mutation randomness."""

    def __init__(
        self,
        data: SiteData,
        generator: DataGenerator,
        rng: random.Random,
        clock: Callable[[], float],
        zone: dt.tzinfo,
    ) -> None:
        self.data = data
        self.generator = generator
        self.rng = rng
        self.clock = clock
        self.zone = zone

    def customer_ids(self) -> list[str]:
        return [cid for cid, c in self.data.tables["contact"].items() if c["is_customer"] == "1"]

    def update_record(
        self, resource: str, record_id: str, fields: Mapping[str, object]
    ) -> dict[str, Any]:
        """Set fields on one record and bump its ``modified_at``, as an edit in ezyVet does."""
        table = self.data.tables.get(resource)
        if resource not in FIELDS or table is None:
            raise ValueError(f"Unknown resource {resource!r}.")
        record = table.get(str(record_id))
        if record is None:
            raise ValueError(f"No {resource} with id {record_id}.")
        allowed = set(FIELDS[resource]) | {"active"}
        unknown = sorted(set(fields) - allowed)
        if unknown:
            raise ValueError(f"Unknown {resource} fields: {', '.join(unknown)}.")
        for key, value in fields.items():
            if isinstance(value, list):
                record[key] = [str(v) for v in value]
            else:
                record[key] = "" if value is None else str(value)
        self._touch(record)
        return json.loads(_json(record))

    def add_clients(self, count: int) -> list[str]:
        """New pet owners (with address, details and pets) created now; their contact ids."""
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        return [self.generator.new_client(now, now, now) for _ in range(count)]

    def add_animal(self, contact_id: str, **fields: object) -> dict[str, Any]:
        """A new pet for an existing contact, created now; ``fields`` override generated ones."""
        if str(contact_id) not in self.data.tables["contact"]:
            raise ValueError(f"No contact with id {contact_id}.")
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        animal = self.generator.new_animal(str(contact_id), now, now, now)
        for key, value in fields.items():
            animal[key] = "" if value is None else str(value)
        self.data.changed()
        return json.loads(_json(animal))

    def mutate_random(self, count: int) -> list[dict[str, str]]:
        """``count`` plausible edits a clinic makes in a day; each bumps ``modified_at``."""
        changed: list[dict[str, str]] = []
        rng = self.rng
        kinds = ("weight", "email", "phone", "address", "name", "pet_name", "deceased")
        weights = (35, 10, 10, 10, 10, 5, 5)
        customers = self.customer_ids()
        animals = self.data.tables["animal"]
        animal_ids = list(animals)
        for _ in range(count):
            kind = rng.choices((*kinds, "new_animal", "new_client"), (*weights, 10, 5))[0]
            if kind == "new_client":
                new_id = self.add_clients(1)[0]
                customers.append(new_id)
                changed.append({"resource": "contact", "id": new_id, "change": kind})
                continue
            if kind == "new_animal":
                owner = rng.choice(customers)
                animal = self.add_animal(owner)
                changed.append({"resource": "animal", "id": animal["id"], "change": kind})
                continue
            if kind in {"weight", "pet_name", "deceased"}:
                animal = animals[rng.choice(animal_ids)]
                changed.append(self._mutate_animal(animal, kind))
                continue
            contact = self.data.tables["contact"][rng.choice(customers)]
            changed.append(self._mutate_contact(contact, kind))
        return changed

    def mutate(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """The ``/_emulator/mutate`` body: ``count``, or ``resource``+``id``+``fields``,
        and/or ``add_clients``, ``add_animals`` (+ optional ``contact_id``)."""
        result: dict[str, Any] = {"changed": [], "created": []}
        if spec.get("count"):
            result["changed"] += self.mutate_random(int(spec["count"]))
        if spec.get("resource"):
            record = self.update_record(
                str(spec["resource"]), str(spec.get("id", "")), spec.get("fields") or {}
            )
            result["changed"].append({"resource": spec["resource"], "id": record["id"]})
        if spec.get("add_clients"):
            ids = self.add_clients(int(spec["add_clients"]))
            result["created"] += [{"resource": "contact", "id": i} for i in ids]
        for _ in range(int(spec.get("add_animals") or 0)):
            owner = spec.get("contact_id") or self.rng.choice(self.customer_ids())
            animal = self.add_animal(str(owner))
            result["created"].append({"resource": "animal", "id": animal["id"]})
        return result

    def _touch(self, record: Record) -> None:
        record["modified_at"] = str(int(self.clock()))
        self.data.changed()

    def _mutate_animal(self, animal: Record, kind: str) -> dict[str, str]:
        rng = self.rng
        if kind == "weight":
            weight = str(animal["weight"]) or "10"
            animal["weight"] = f"{float(weight) * rng.uniform(0.85, 1.15):.2f}"
        elif kind == "pet_name":
            animal["name"] = rng.choice(PET_NAMES)
        else:
            animal["is_dead"] = "1"
            today = dt.datetime.fromtimestamp(self.clock(), self.zone).date()
            animal["date_of_death"] = local_midnight(today, self.zone)
        self._touch(animal)
        return {"resource": "animal", "id": str(animal["id"]), "change": kind}

    def _mutate_contact(self, contact: Record, kind: str) -> dict[str, str]:
        rng = self.rng
        tables = self.data.tables
        if kind == "name":
            contact["last_name"] = rng.choice(LAST_NAMES)
            self._touch(contact)
            return {"resource": "contact", "id": str(contact["id"]), "change": kind}
        if kind == "address":
            address = tables["address"][str(contact["address_physical"])]
            address["street_1"] = f"{rng.randint(1, 9999)} {rng.choice(STREETS)}"
            self._touch(address)
            return {"resource": "address", "id": str(address["id"]), "change": kind}
        type_name = "Email" if kind == "email" else "Mobile"
        first = str(contact["first_name"] or "owner").lower()
        value = (
            f"{first}.{rng.choice(FIRST_NAMES).lower()}{rng.randint(1, 999)}@"
            f"{rng.choice(EMAIL_DOMAINS)}"
            if kind == "email"
            else f"({rng.randint(201, 989)}) 555-0{rng.randint(100, 199)}"
        )
        detail_ids = contact["contact_detail_list"]
        assert isinstance(detail_ids, list)
        for detail_id in detail_ids:
            detail = tables["contactdetail"][detail_id]
            if detail["name"] == type_name and detail["active"] == "1":
                detail["value"] = value
                self._touch(detail)
                return {"resource": "contactdetail", "id": str(detail["id"]), "change": kind}
        detail = self.data.add(
            "contactdetail",
            {
                "active": "1",
                "created_at": str(int(self.clock())),
                "modified_at": str(int(self.clock())),
                "contact_id": contact["id"],
                "name": type_name,
                "value": value,
                "contact_detail_type_id": self.data.detail_type_ids[type_name],
                "preferred": "1",
            },
        )
        detail_ids.append(detail["id"])
        self._touch(contact)
        return {"resource": "contactdetail", "id": str(detail["id"]), "change": kind}
