"""Metrics counted where the clinics layer talks to a PIMS (shown at /metrics by vetsync.ops)."""

from __future__ import annotations

from prometheus_client import Counter

EZYVET_CALLS = Counter("vetsync_ezyvet_calls", "Calls to ezyVet, by site.", ["site"])
EZYVET_RATE_LIMITED = Counter(
    "vetsync_ezyvet_rate_limited", "429 answers from ezyVet, by site.", ["site"]
)
