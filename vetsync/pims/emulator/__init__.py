"""A faithful local stand-in for an ezyVet site (v1 REST), for the demo and the tests.

Nothing in the product imports this package. Run it with
``python -m vetsync.pims.emulator --port 8765 --clients 500 --seed 1``, or start one in-process:

    with EzyVetEmulator(clients=50, seed=3) as site:
        client = EzyVetClient(site.base_url, credentials)

Many sites in one process (``--sites N``; see ``fleet``): site n answers under ``/site/<n>/``
with its own credentials, so ``FleetEmulator.site_url(n)`` is an integration's base URL:

    with FleetEmulator(sites=100, clients=1000, clients_sigma=0.9) as fleet:
        client = EzyVetClient(fleet.site_url(7), parse_credentials_file(
            fleet.site(7).credentials.as_text()))

Choices where ezyVet's public material is silent, and why:
- ``limit`` over 200 is a 400, not clamped, so a client that miscounts pages fails loudly;
- rate limits are sliding windows (at most N calls in any window), the strictest reading of
  "180/min"; a 429 carries ``Retry-After`` in whole seconds; 429s are not counted, and the
  token endpoint is not limited;
- dates of birth and death are epoch-second strings at local midnight of the site's time
  zone, like every other v1 date;
- ``consult.vet_id`` is a user id (the same id space as ``prescribing_vet_user_id``), and a
  user is a vet when its ``contact_id`` names a contact with ``is_vet`` "1";
- GET ``v1/externalprescription`` (to look up an ``external_reference``) needs the
  ``write-externalprescription`` scope, the only one VetSync holds for it;
- every error on the token endpoint is a 401 with ezyVet's ``messages`` body.
"""

from __future__ import annotations

from vetsync.pims.emulator.auth import EmulatorCredentials
from vetsync.pims.emulator.fleet import (
    EzyVetFleet,
    FleetSite,
    lognormal_client_counts,
    site_credentials,
)
from vetsync.pims.emulator.schema import ALL_SCOPES
from vetsync.pims.emulator.server import EzyVetEmulator, FleetEmulator
from vetsync.pims.emulator.site import EzyVetSite

__all__ = [
    "ALL_SCOPES",
    "EmulatorCredentials",
    "EzyVetEmulator",
    "EzyVetFleet",
    "EzyVetSite",
    "FleetEmulator",
    "FleetSite",
    "lognormal_client_counts",
    "site_credentials",
]
