"""Possible matches as staff see them: the matcher's evidence kept with every suggestion, and
the one-time re-scoring of suggestions made before evidence was recorded."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from clinics.audit import audit_log
from clinics.models import Clinic
from records.linkage.compare import compare
from records.linkage.model import Fit
from records.linkage.people import Person
from records.matching import (
    CustomerPool,
    Match,
    Pair,
    candidate_pairs,
    evidence_text,
    fit_model,
    score_pair,
    thresholds,
)
from records.models import Client, ManualUpdate

RESCORE_ACTION = "match.suggestions_rescored"


def suggestion_proposed(match: Match) -> dict[str, Any]:
    """What a possible match keeps in ``ManualUpdate.proposed``."""
    return {
        "rule": match.rule,
        "score": round(match.score, 6),
        "evidence": match.evidence,
    }


def match_evidence_text(match: Match) -> str:
    """The report's ``evidence`` column: each field's weight, and why staff decide if they do."""
    words = evidence_text(match.evidence.get("weights", ()))
    held = match.evidence.get("held_because")
    return f"{held}: {words}" if held else words


def suggestions_rescore(*, clinic: Clinic) -> int:
    """Score, once, the clinic's pending possible matches made before evidence was recorded.

    The model is fitted on the clinic's data as a sync would (its customers not linked to the
    PIMS, its PIMS clients); each pair keeps its probability and weights. Returns how many
    suggestions were scored; a second call finds none.
    """
    from records.sync.plan import people_of  # the sync package imports this module

    with transaction.atomic():
        updates = list(
            ManualUpdate.objects.select_for_update()
            .filter(
                clinic=clinic,
                kind=ManualUpdate.Kind.POSSIBLE_MATCH,
                status=ManualUpdate.Status.PENDING,
            )
            .exclude(proposed__has_key="evidence")
            .order_by("pk")
        )
        if not updates:
            return 0
        region = clinic.region
        pool = CustomerPool()
        customers = Client.objects.filter(clinic=clinic, merged_into__isnull=True).exclude(
            customer_ref=""
        )
        for person, _ in people_of(customers, key="pk", region=region):
            pool.add(person)
        pims_clients = Client.objects.filter(
            clinic=clinic, customer_ref="", merged_into__isnull=True
        ).exclude(pims_id="")
        found = people_of(pims_clients, key="pk", region=region)
        people = {person.key: person for person, _ in found}
        everyone = list(people.values())
        fit = fit_model(list(pool.customers.values()), everyone, candidate_pairs(pool, everyone))
        limits = thresholds()
        for update in updates:
            _rescore_one(update, pool, people, fit, limits)
        audit_log(
            action=RESCORE_ACTION,
            actor_label="matcher",
            clinic=clinic,
            after={"suggestions": len(updates), "model": fit.summary()},
        )
    return len(updates)


def _rescore_one(
    update: ManualUpdate,
    pool: CustomerPool,
    people: dict[str, Person],
    fit: Fit,
    limits: dict[str, float],
) -> None:
    customer = pool.customers.get(str(update.client_id))
    person = people.get(str(update.candidate_id))
    proposed = dict(update.proposed or {})
    if customer is None or person is None:
        evidence: dict[str, Any] = {"weights": [], "thresholds": limits, "model": fit.summary()}
        proposed.update(evidence=evidence)
    else:
        pair = Pair(customer, person, compare(person, customer))
        probability, weights = score_pair(fit, pair)
        evidence = {
            "probability": probability,
            "weights": weights,
            "model": fit.summary(),
            "thresholds": limits,
            "rescored": True,
        }
        proposed.update(score=round(probability, 6), evidence=evidence)
    update.proposed = proposed
    update.save(update_fields=["proposed"])
