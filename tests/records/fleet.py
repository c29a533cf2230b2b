"""Live ezyVet clinics on the multi-site emulator's sites, for the fleet's tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from clinics import credentials
from clinics.models import Connector, Integration
from tests.factories import ClinicFactory, IntegrationFactory
from vetsync.pims.emulator import FleetEmulator


def ezyvet_clinic(n: int) -> Integration:
    """A live ezyVet clinic whose integration has credentials but no site yet (``on_site``
    gives it one); enough for the schedule, which never calls ezyVet."""
    clinic = ClinicFactory(slug=f"fleet-{n}", name=f"Fleet clinic {n}")
    values = {
        "partner_id": "vetsync-partner",
        "client_id": f"client-{n:04d}",
        "client_secret": "not-yet",
        "site_uid": f"site-{n:04d}",
    }
    return IntegrationFactory(
        clinic=clinic,
        connector=Connector.EZYVET,
        status=Integration.Status.LIVE,
        base_url="http://127.0.0.1:9/site/0",
        credentials_ciphertext=credentials.seal(values),
    )


def on_site(integration: Integration, fleet: FleetEmulator, n: int) -> Integration:
    """The integration pointed at site ``n`` of ``fleet``, with that site's credentials."""
    creds = fleet.site(n).credentials
    values = {
        "partner_id": creds.partner_id,
        "client_id": creds.client_id,
        "client_secret": creds.client_secret,
        "site_uid": creds.site_uid,
    }
    Integration.objects.filter(pk=integration.pk).update(
        base_url=fleet.site_url(n), credentials_ciphertext=credentials.seal(values)
    )
    integration.refresh_from_db()
    return integration


@contextlib.contextmanager
def running_fleet(*, sites: int, clients: int, seed: int) -> Iterator[FleetEmulator]:
    """A multi-site emulator on a real socket, without rate limits, for one test."""
    emulator = FleetEmulator(
        sites=sites, clients=clients, seed=seed, rate_per_minute=0, endpoint_rate_per_minute=0
    )
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
