"""The PIMS's fields and the pharmacy's: which Client or Patient field each PIMS value goes to,
and how the PIMS's own values are kept beside a record (``pims_seen``).

One table each, read by the sync engine, merging, manual updates, the record history and
Pet Owner Care.
"""

from __future__ import annotations

from typing import Any

from records.models import Client, ManualUpdate
from vetsync.pims.records import PimsClient, PimsPatient

# PIMS address keys (``PimsAddress``, ``Client.pims_seen``) → the pharmacy's Client fields.
ADDRESS_TO_CLIENT = {
    "line1": "address_line1",
    "line2": "address_line2",
    "city": "city",
    "state": "state",
    "postcode": "postcode",
    "country": "country",
}
CLIENT_TO_ADDRESS = {attr: key for key, attr in ADDRESS_TO_CLIENT.items()}
PIMS_ADDRESS_KEYS = tuple(ADDRESS_TO_CLIENT)
CLIENT_ADDRESS_ATTRS = tuple(ADDRESS_TO_CLIENT.values())
CLIENT_NAME_ATTRS = ("first_name", "last_name")

# The values of a held client change (``ManualUpdate.current``/``proposed`` keys → fields).
HELD_CLIENT_FIELDS: dict[str, dict[str, str]] = {
    ManualUpdate.Kind.CLIENT_NAME: {attr: attr for attr in CLIENT_NAME_ATTRS},
    ManualUpdate.Kind.CLIENT_ADDRESS: ADDRESS_TO_CLIENT,
}

# A pet's details that a merge fills in when the pharmacy's pet has none.
PET_FILL_IF_EMPTY = ("species", "breed", "sex", "microchip")

# What the sync engine writes back to a client or pet it changed (``bulk_update_rows``).
CLIENT_UPDATE_FIELDS = [
    "first_name",
    "last_name",
    "email",
    "phone",
    "phone_normalized",
    *CLIENT_ADDRESS_ATTRS,
    "pims_id",
    "pims_seen",
    "pims_modified_at",
    "updated_at",
]
PATIENT_UPDATE_FIELDS = [
    "species",
    "breed",
    "sex",
    "birth_date",
    "weight",
    "weight_unit",
    "is_deceased",
    "deceased_on",
    "microchip",
    "pims_id",
    "pims_seen",
    "pims_modified_at",
    "updated_at",
]


def client_held_values(client: Client, kind: str) -> dict[str, Any]:
    """The pharmacy's values a held PIMS name or address (``kind``) is compared with."""
    return {key: getattr(client, attr) for key, attr in HELD_CLIENT_FIELDS[kind].items()}


def client_seen(client: PimsClient) -> dict[str, Any]:
    """The PIMS's values for a client, as kept in ``Client.pims_seen``."""
    return {
        "first_name": client.first_name,
        "last_name": client.last_name,
        "email": client.email,
        "phone": client.phone,
        **{key: getattr(client.address, key) for key in PIMS_ADDRESS_KEYS},
        "active": client.active,
    }


def patient_seen(patient: PimsPatient) -> dict[str, Any]:
    """The PIMS's values for a pet, as kept in ``Patient.pims_seen``."""
    return {
        "name": patient.name,
        "species": patient.species,
        "breed": patient.breed,
        "sex": patient.sex,
        "birth_date": patient.birth_date.isoformat() if patient.birth_date else None,
        "weight": str(patient.weight) if patient.weight is not None else None,
        "weight_unit": patient.weight_unit.value,
        "deceased": patient.deceased,
        "deceased_on": patient.deceased_on.isoformat() if patient.deceased_on else None,
        "microchip": patient.microchip,
        "active": patient.active,
    }
