"""Each ezyVet site's rate limits shared across every process: the shared store is chosen from
the settings (Redis through the ``limits`` package when ``EZYVET_LIMITER_URL`` or ``REDIS_URL``
is set, else a file-locked window under ``VETSYNC_VAR_DIR``, never the database), and every
call is counted for /metrics (calls and 429s by site)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from clinics.metrics import EZYVET_CALLS, EZYVET_RATE_LIMITED
from clinics.models import Integration
from vetsync.pims.ezyvet.shared_limits import (
    PULL,
    FileBackend,
    LimitsBackend,
    SharedRateLimiter,
    WindowBackend,
)


@cache
def _backend(url: str, directory: str) -> WindowBackend:
    return LimitsBackend(url) if url else FileBackend(Path(directory))


def limiter_backend() -> WindowBackend:
    """One backend per process and configuration (its connection pool is reused)."""
    return _backend(settings.EZYVET_LIMITER_URL, str(settings.EZYVET_LIMITER_DIR))


def site_label(integration: Integration) -> str:
    """The ezyVet site an integration calls: its address's host (and path, if any)."""
    parts = urlsplit(integration.base_url)
    return (parts.netloc + parts.path.rstrip("/").removesuffix("/v1")) or "unknown"


def shared_limiter(
    integration: Integration, site_uid: str, *, priority: str = PULL
) -> SharedRateLimiter:
    """The site's budget, shared by its pulls and writebacks (writebacks first)."""
    return SharedRateLimiter(
        backend=limiter_backend(),
        site=f"{site_label(integration)}/{site_uid}",
        priority=priority,
        rate=settings.EZYVET_RATE_PER_MINUTE,
        endpoint_rate=settings.EZYVET_ENDPOINT_RATE_PER_MINUTE,
        window=settings.EZYVET_RATE_WINDOW_SECONDS,
        margin=settings.EZYVET_LIMITER_MARGIN_SECONDS,
        reserve=settings.EZYVET_WRITEBACK_RESERVE,
    )


def call_counter(integration: Integration) -> Callable[[str, int | None], None]:
    site = site_label(integration)

    def counted(endpoint: str, status: int | None) -> None:
        EZYVET_CALLS.labels(site=site).inc()
        if status == 429:
            EZYVET_RATE_LIMITED.labels(site=site).inc()

    return counted
