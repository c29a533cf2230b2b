"""Hooks a higher layer registers for, so records never imports prescriptions.

The prescriptions app registers in its ``AppConfig.ready``; the sync engine calls the hook
inside the transaction that marks the pets deceased, so both commit or neither does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from records.models import Patient

PatientsDeceasedHandler = Callable[[Sequence[Patient]], None]

_deceased_handlers: list[PatientsDeceasedHandler] = []


def on_patients_deceased(handler: PatientsDeceasedHandler) -> PatientsDeceasedHandler:
    """Register ``handler(patients)``: called when pets become deceased (orders go on hold)."""
    if handler not in _deceased_handlers:
        _deceased_handlers.append(handler)
    return handler


def remove_patients_deceased_handler(handler: PatientsDeceasedHandler) -> None:
    if handler in _deceased_handlers:
        _deceased_handlers.remove(handler)


def patients_became_deceased(patients: Sequence[Patient]) -> None:
    if not patients:
        return
    for handler in list(_deceased_handlers):
        handler(patients)


# A pet renamed by staff (by hand or by accepting the PIMS's new name). Called inside the
# rename's transaction with (patient after the rename, old name, actor, reason): the
# prescriptions app ends the pet's open prescriptions and drafts new ones under the new name.
PatientRenamedHandler = Callable[[Patient, str, Any, str], None]

_renamed_handlers: list[PatientRenamedHandler] = []


def on_patient_renamed(handler: PatientRenamedHandler) -> PatientRenamedHandler:
    """Register ``handler(patient, old_name, actor, reason)`` for every staff rename."""
    if handler not in _renamed_handlers:
        _renamed_handlers.append(handler)
    return handler


def patient_was_renamed(patient: Patient, old_name: str, actor: Any, reason: str) -> None:
    for handler in list(_renamed_handlers):
        handler(patient, old_name, actor, reason)
