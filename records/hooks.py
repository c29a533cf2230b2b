"""Hooks a higher layer registers for, so records never imports prescriptions.

The prescriptions app registers in its ``AppConfig.ready``; the sync engine calls the hook
inside the transaction that marks the pets deceased, so both commit or neither does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
