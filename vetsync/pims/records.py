"""Normalised PIMS records: the one shape every connector produces and the sync engine takes.

Connectors (ezyVet pulls, agent batches) turn their wire formats into these; the engine in
``records.sync`` never sees a vendor's format. Pure data: no Django, no I/O.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

if sys.version_info >= (3, 11):
    from enum import StrEnum  # novm (guarded by the version check)
else:  # Python 3.10: the clinic-side agent's wheel carries this module to clinics' servers
    from enum import Enum

    class StrEnum(str, Enum):
        def __str__(self) -> str:
            return str(self.value)


class Source(StrEnum):
    EZYVET = "ezyvet"
    SYNCVET = "syncvet"
    VETDATA = "vetdata"
    DATAPOINT = "datapoint"
    VETSUCCESS = "vetsuccess"


class WeightUnit(StrEnum):
    KG = "kg"
    LB = "lb"


# The three record types are named tuples, not frozen dataclasses: a first copy builds 250,000
# of them, and a frozen dataclass sets each field through ``object.__setattr__`` (half the
# time reading a batch took). Immutable and compared by value all the same.


class PimsAddress(NamedTuple):
    line1: str = ""
    line2: str = ""
    city: str = ""
    state: str = ""
    postcode: str = ""
    country: str = ""

    def is_empty(self) -> bool:
        return not any((self.line1, self.line2, self.city, self.state, self.postcode))


class PimsPatient(NamedTuple):
    pims_id: str
    name: str
    species: str = ""
    breed: str = ""
    sex: str = ""
    birth_date: dt.date | None = None
    weight: Decimal | None = None
    weight_unit: WeightUnit = WeightUnit.KG
    deceased: bool = False
    deceased_on: dt.date | None = None
    microchip: str = ""
    active: bool = True
    modified_at: dt.datetime | None = None


class PimsClient(NamedTuple):
    pims_id: str
    first_name: str
    last_name: str
    email: str = ""
    phone: str = ""
    address: PimsAddress = PimsAddress()
    active: bool = True
    modified_at: dt.datetime | None = None
    patients: tuple[PimsPatient, ...] = ()


@dataclass(frozen=True, slots=True)
class QuarantinedRecord:
    """A record that failed validation: kept with its reason so staff can see and retry it."""

    kind: str  # "client" | "patient"
    pims_id: str  # may be "" when the id itself was missing
    reason: str
    raw: dict[str, object]
    client_pims_id: str = ""  # the owner, for a patient


@dataclass(frozen=True, slots=True)
class PimsBatch:
    """One unit of work from a PIMS: an agent's batch or one page-set of an ezyVet pull."""

    source: Source
    batch_id: str
    sent_at: dt.datetime | None
    full: bool
    clients: tuple[PimsClient, ...]
    quarantined: tuple[QuarantinedRecord, ...] = ()
