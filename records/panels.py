"""Sections a higher app adds to the client and pet pages, so that records never imports it.

The prescriptions app registers a provider in its ``AppConfig.ready``; the page calls each
provider with the request and the record and shows the panels they return, in order. A
provider runs a bounded number of queries of its own (the pages' query budget counts them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest

from records.models import Client, Patient


@dataclass(frozen=True)
class Panel:
    """A titled section: ``template`` is included with ``panel`` (this object) in context."""

    title: str
    template: str
    context: dict[str, Any] = field(default_factory=dict)
    key: str = ""


ClientPanelProvider = Callable[[HttpRequest, Client], Panel | None]
PatientPanelProvider = Callable[[HttpRequest, Patient], Panel | None]

_client_providers: list[ClientPanelProvider] = []
_patient_providers: list[PatientPanelProvider] = []


def register_client_panel(provider: ClientPanelProvider) -> ClientPanelProvider:
    if provider not in _client_providers:
        _client_providers.append(provider)
    return provider


def register_patient_panel(provider: PatientPanelProvider) -> PatientPanelProvider:
    if provider not in _patient_providers:
        _patient_providers.append(provider)
    return provider


def unregister_panel(provider: Callable[..., Panel | None]) -> None:
    for providers in (_client_providers, _patient_providers):
        if provider in providers:
            providers.remove(provider)  # type: ignore[arg-type]


def client_panels(request: HttpRequest, client: Client) -> list[Panel]:
    return [p for p in (provider(request, client) for provider in _client_providers) if p]


def patient_panels(request: HttpRequest, patient: Patient) -> list[Panel]:
    return [p for p in (provider(request, patient) for provider in _patient_providers) if p]
