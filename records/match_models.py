"""The matcher's prior, learnt across clinics: each sync that matched keeps the m
probabilities it estimated (``MatchModelFit``); a clinic's next fit starts from the pooled fits
of the other clinics, blended with the built-in prior. A small clinic keeps that prior; a big
one outgrows it (``records.linkage.model``)."""

from __future__ import annotations

from clinics.models import Clinic
from records.linkage.model import MODEL_VERSION, PRIOR_M, PRIOR_STRENGTH_M, Fit, Table
from records.models import MatchModelFit

POOLED_FITS = 200  # the latest fits read (one per clinic is kept)
MAX_FIT_WEIGHT = 1000  # no clinic counts for more than this many matched pairs


def pooled_prior(*, clinic: Clinic) -> Table:
    """The other clinics' latest fits of this model version, each weighed by how much of it
    was its own data, blended with the built-in prior (``PRIOR_STRENGTH_M`` pairs' worth)."""
    latest: dict[int, MatchModelFit] = {}
    for fit in (
        MatchModelFit.objects.filter(version=MODEL_VERSION)
        .exclude(clinic=clinic)
        .order_by("-created_at", "-id")[:POOLED_FITS]
    ):
        latest.setdefault(fit.clinic_id, fit)
    sums = [[PRIOR_STRENGTH_M * p for p in row] for row in PRIOR_M]
    total = PRIOR_STRENGTH_M
    for fit in latest.values():
        if not _fits_the_shape(fit.m):
            continue
        weight = min(fit.pairs, MAX_FIT_WEIGHT) * fit.own_share
        total += weight
        for row, theirs in zip(sums, fit.m, strict=True):
            for level, p in enumerate(theirs):
                row[level] += weight * float(p)
    return [[value / total for value in row] for row in sums]


def _fits_the_shape(m: object) -> bool:
    return (
        isinstance(m, list)
        and len(m) == len(PRIOR_M)
        and all(
            isinstance(row, list) and len(row) == len(p) for row, p in zip(m, PRIOR_M, strict=True)
        )
    )


def match_fit_record(*, clinic: Clinic, fit: Fit) -> None:
    """Keep what a sync's matcher learnt, for the other clinics' prior."""
    if fit.pairs:
        MatchModelFit.objects.create(
            clinic=clinic,
            version=MODEL_VERSION,
            m=[[round(p, 6) for p in row] for row in fit.m],
            pairs=fit.pairs,
            own_share=fit.own_share,
        )
