"""A valid external prescription for the emulated site, to vary one thing at a time."""

from __future__ import annotations

from typing import Any

from vetsync.pims.emulator import EzyVetEmulator

PRESCRIBED_AT = 1_790_000_000


def prescription(
    emulator: EzyVetEmulator, reference: str = "VS-RX-1001", **root: Any
) -> dict[str, Any]:
    consult = emulator.records("consult")[0]
    animal = emulator.record("animal", consult["animal_id"])
    payload: dict[str, Any] = {
        "animal_id": int(animal["id"]),
        "contact_id": int(animal["contact_id"]),
        "prescribing_vet_user_id": int(consult["vet_id"]),
        "consult_id": int(consult["id"]),
        "date_of_prescription": PRESCRIBED_AT,
        "external_reference": reference,
        "total_price": 62.5,
        "external_prescription_item_list": [
            item("CARPROFEN-75", "Carprofen 75 mg chewable", price=42.5),
            item("OMEGA-3", "Omega-3 fish oil", price=20),
        ],
    }
    payload.update(root)
    return payload


def item(reference: str, name: str = "A product", **fields: Any) -> dict[str, Any]:
    return {
        "external_product_name": name,
        "external_product_reference": reference,
        "external_link": f"https://vetsync.example/rx/{reference}",
        "instructions": "Give one daily with food",
        "price": 10,
        "qty": 30,
        "remaining": 60,
        **fields,
    }
