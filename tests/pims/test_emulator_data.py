"""The generated site looks like a clinic's: owners with 1-3 pets, a few deceased, vets."""

from __future__ import annotations

from collections import Counter

from vetsync.pims.emulator import EzyVetEmulator

TIME_FIELDS = {"created_at", "modified_at", "date_of_birth", "date_of_death", "date"}


def test_generated_clinic_is_plausible() -> None:
    site = EzyVetEmulator(clients=500, seed=11)
    customers = set(site.customer_ids())
    animals = site.records("animal")

    assert len(customers) == 500
    pets = Counter(a["contact_id"] for a in animals)
    assert set(pets) == customers
    assert set(pets.values()) == {1, 2, 3}
    dead = [a for a in animals if a["is_dead"] == "1"]
    assert 0.01 < len(dead) / len(animals) < 0.06
    assert all(a["date_of_death"].isdigit() for a in dead)
    assert {a["weight_unit"] for a in animals} == {"kg", "lb"}
    for animal in animals:
        assert animal["date_of_birth"] == "" or animal["date_of_birth"].isdigit()
        assert animal["weight"] == "" or float(animal["weight"]) > 0

    contacts = {c["id"]: c for c in site.records("contact")}
    vets = [u for u in site.records("user") if contacts[u["contact_id"]]["is_vet"] == "1"]
    assert len(vets) >= 2
    vet_ids = {u["id"] for u in vets}
    animal_ids = {a["id"] for a in animals}
    consults = site.records("consult")
    assert consults
    assert all(c["vet_id"] in vet_ids and c["animal_id"] in animal_ids for c in consults)
    details = site.records("contactdetail")
    assert all(d["contact_id"] in contacts for d in details)
    assert sum("@" in d["value"] for d in details) > 300


def test_same_seed_same_site_other_seed_other_site() -> None:
    def names(seed: int) -> list[tuple[str, ...]]:
        site = EzyVetEmulator(clients=40, seed=seed)
        return [
            tuple(v for k, v in sorted(r.items()) if k not in TIME_FIELDS and isinstance(v, str))
            for r in site.records("contact") + site.records("animal")
        ]

    assert names(5) == names(5)
    assert names(5) != names(6)
