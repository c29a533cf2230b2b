"""The prescriptions tests' ezyVet clinic (emulator on a real socket, WriteBack on)."""

from tests.prescriptions.conftest import (  # noqa: F401  (fixtures used by tests/ops)
    _fresh_connectors,
    catalogue,
    ezy_pet,
    ezyvet_clinic,
    site,
)
