"""The ezyVet v1 REST connector: credentials, a polite HTTP client, the pull, the writeback.

``EzyVetClient`` holds one site's token, keeps under the site's rate limits on its own side,
retries what is safe to retry, and turns ezyVet's contacts and animals into
``vetsync.pims.records`` types. ``EzyVetClient.pull`` walks clients in pages of 200 and yields
one ``PimsBatch`` per page; a record that does not parse becomes a ``QuarantinedRecord``
instead of stopping the pull. Pure protocol code: no Django, no database.

One client is meant for one thread. Two processes pulling and writing back for the same site
share ezyVet's limits (and, since a new token expires the old, fight over tokens); the 429 and
401 handling here keeps that correct, only slower.

The modules, lowest first: ``credentials``, ``errors``, ``limits``, ``wire`` (how v1 spells
values), ``transport`` (tokens, limits, retries, paging), ``pull``, ``client``.
"""

from __future__ import annotations

from vetsync.pims.ezyvet.client import (
    ITEMS_KEY,
    SCOPE_PROBES,
    ConnectionCheck,
    EzyVetClient,
    EzyVetConsult,
    EzyVetVet,
    ScopeCheck,
    patch_applied,
)
from vetsync.pims.ezyvet.credentials import (
    PULL_SCOPES,
    REQUIRED_SCOPES,
    WRITEBACK_SCOPES,
    EzyVetCredentials,
    credentials_from_mapping,
    parse_credentials_file,
)
from vetsync.pims.ezyvet.errors import (
    EzyVetAuthError,
    EzyVetError,
    EzyVetProtocolError,
    EzyVetRateLimited,
    EzyVetRequestError,
    EzyVetScopeError,
    EzyVetUnavailable,
    write_may_have_landed,
)
from vetsync.pims.ezyvet.limits import RateLimiter, SlidingWindowLimiter
from vetsync.pims.ezyvet.pull import EzyVetPull
from vetsync.pims.ezyvet.transport import ID_BATCH, PAGE_LIMIT, EzyVetTransport, TokenStore

__all__ = [
    "ID_BATCH",
    "ITEMS_KEY",
    "PAGE_LIMIT",
    "PULL_SCOPES",
    "REQUIRED_SCOPES",
    "SCOPE_PROBES",
    "WRITEBACK_SCOPES",
    "ConnectionCheck",
    "EzyVetAuthError",
    "EzyVetClient",
    "EzyVetConsult",
    "EzyVetCredentials",
    "EzyVetError",
    "EzyVetProtocolError",
    "EzyVetPull",
    "EzyVetRateLimited",
    "EzyVetRequestError",
    "EzyVetScopeError",
    "EzyVetTransport",
    "EzyVetUnavailable",
    "EzyVetVet",
    "RateLimiter",
    "ScopeCheck",
    "SlidingWindowLimiter",
    "TokenStore",
    "credentials_from_mapping",
    "parse_credentials_file",
    "patch_applied",
    "write_may_have_landed",
]
