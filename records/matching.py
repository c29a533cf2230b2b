"""Matching PIMS clients to the pharmacy's home-delivery customers (a Fellegi-Sunter matcher).

For each PIMS client, the customers that share a blocking key with it are compared field by
field (``records.linkage.compare``); each field's level weighs log2(m/u) with m and u estimated
on the clinic's own data (``records.linkage.model``), and the weights add up to a match
probability. Two thresholds, match probabilities in the settings, decide:

- ``MATCH_MERGE_PROBABILITY`` (default 0.999): at or above it the PIMS client is merged into
  the customer automatically: the model puts the chance that they are two different people at
  one in a thousand or less.
- ``MATCH_SUGGEST_PROBABILITY`` (default 0.5): at or above it (and below the merge threshold)
  the pair goes to staff as a possible match: more likely the same person than not.

A wrong merge ships one family's medication to another, so some pairs above the merge threshold
still go to staff: first names that differ outright, unless the phone is the same and no other
customer's (a household shares a surname, an address, often an email and its pets: only the
first name, or a person's own number, tells its people apart); a PIMS client two customers fit
nearly as well; a customer two PIMS clients fit nearly as well. A pair staff said are
different people is never compared again. Every verdict carries its evidence: the weight of
each field.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import chain
from typing import Any

from django.conf import settings

from records.linkage.blocking import BlockIndex
from records.linkage.compare import (
    EMAIL_I,
    FIELDS,
    FIRST,
    FIRST_NAMES_DIFFER,
    LAST,
    PHONE_I,
    STREET_I,
    Levels,
    compare,
    field_values,
    known_given_names,
)
from records.linkage.model import (
    PRIOR_LAMBDA,
    PRIOR_M,
    PRIOR_U,
    RANDOM_PAIRS,
    Fit,
    em,
    estimate_u,
    posterior,
    probability,
    random_pairs,
    term_frequencies,
    weight,
)
from records.linkage.people import (
    PLACEHOLDER_EMAIL,
    Person,
    normalize_email,
    normalize_phone,
    normalize_postcode,
    normalize_text,
    split_street,
)

__all__ = [
    "PLACEHOLDER_EMAIL",
    "CustomerPool",
    "Match",
    "Person",
    "Verdict",
    "evidence_text",
    "normalize_email",
    "normalize_phone",
    "normalize_postcode",
    "normalize_text",
    "plan_matches",
    "split_street",
]

RULE_MAX = 200  # ClientMerge.rule's length
# Two candidates both above the merge threshold: the better one is merged only if its evidence
# is this many bits (log2 of the odds) stronger: a thousand times likelier.
MARGIN = 10.0


class Verdict(StrEnum):
    MERGE = "merge"
    POSSIBLE = "possible"


def thresholds() -> dict[str, float]:
    return {
        "merge": float(getattr(settings, "MATCH_MERGE_PROBABILITY", 0.999)),
        "suggest": float(getattr(settings, "MATCH_SUGGEST_PROBABILITY", 0.5)),
    }


@dataclass(frozen=True, slots=True)
class Match:
    verdict: Verdict
    customer_key: str
    rule: str  # the evidence in words (and why staff must decide, when they must)
    score: float  # the match probability, 0 to 1
    # {"probability", "weights": [[field, words, weight], …], "model": {…}, "thresholds": {…}}
    evidence: dict[str, Any] = field(default_factory=dict)


MINUS = "\u2212"  # a real minus sign, not a hyphen


def format_weight(value: float) -> str:
    return f"{'+' if value >= 0 else MINUS}{abs(value):.1f}"


def format_percent(probability: float) -> str:
    """A probability as a percentage, with the digits that tell 99.9 % from 99.99 %."""
    if probability >= 0.99999:
        return "> 99.999 %"
    digits = 0 if probability < 0.99 else 2 if probability < 0.9999 else 3
    return f"{100 * probability:.{digits}f} %"


def evidence_text(weights: Iterable[Sequence[Any]]) -> str:
    """ "phone same +9.1; surname smyth/smith +4.2; street number differs -2.0" """
    return "; ".join(f"{words} {format_weight(float(w))}" for _field, words, w in weights)


def _describe(index: int, level: int, a: str, b: str) -> str:
    spec = FIELDS[index]
    label = spec.levels[level]
    if level == 1:
        return f"{spec.name} same"
    if level in spec.shows_values:
        suffix = "" if label in {"close", "similar", "typo"} else f" ({label})"
        return f"{spec.name} {a}/{b}{suffix}"
    return f"{spec.name} {label}"


@dataclass
class CustomerPool:
    """Home-delivery customers not yet linked to a PIMS record, indexed for blocking."""

    customers: dict[str, Person] = field(default_factory=dict)
    rejected: set[tuple[str, str]] = field(default_factory=set)  # (customer key, pims_id)
    # The prior EM starts from (``records.match_models.pooled_prior``); the built-in one if None.
    prior_m: list[list[float]] | None = None
    fit: Fit | None = None  # what ``plan_matches`` fitted, for the caller to keep

    def add(self, person: Person) -> None:
        self.customers[person.key] = person

    def __len__(self) -> int:
        return len(self.customers)


@dataclass(slots=True)  # a first copy holds one per candidate pair (100,000 and more)
class Pair:
    customer: Person
    person: Person
    levels: Levels


def candidate_pairs(pool: CustomerPool, people: Sequence[Person]) -> list[Pair]:
    """Every (customer, PIMS client) pair sharing a blocking key, but those staff rejected."""
    customers = list(pool.customers.values())
    index = BlockIndex()
    for position, customer in enumerate(customers):
        index.add(position, customer)
    names = known_given_names()
    pairs = []
    # Pairs fall into a few hundred patterns of levels: each pattern is held once.
    patterns: dict[Levels, Levels] = {}
    for person in people:
        for position in sorted(index.candidates(person)):
            customer = customers[position]
            if (customer.key, person.key) in pool.rejected:
                continue
            levels = compare(person, customer, names)
            pairs.append(Pair(customer, person, patterns.setdefault(levels, levels)))
    return pairs


def fit_model(
    customers: Sequence[Person],
    people: Sequence[Person],
    pairs: Sequence[Pair],
    prior_m: list[list[float]] | None = None,
) -> Fit:
    """m and u for this clinic's data: u on random pairs, m by EM on the candidate pairs,
    starting from ``prior_m`` (the built-in prior if None)."""
    names = known_given_names()
    sample = random_pairs(len(people), len(customers), count=RANDOM_PAIRS)
    u, n_random = estimate_u(compare(people[i], customers[j], names) for i, j in sample)
    # EM learns m from the best candidates that share an identifier (the clinic's near-
    # neighbours, that share a street or a postcode, are not a kind of match: letting EM see
    # them all it can take them for the matches when the data is uniform); lambda is then the
    # share of all candidate pairs that the best candidates' posteriors say are matches.
    best = best_candidates(pairs, u)
    fit = em(
        Counter(levels for levels in best if _identified(levels)),
        u=u,
        start=Fit(m=prior_m or [list(row) for row in PRIOR_M], u=u, lam=PRIOR_LAMBDA),
        prior_m=prior_m or PRIOR_M,
    )
    expected = sum(posterior(levels, fit.m, u, fit.lam) for levels in best)
    fit.lam = min(0.999, max(1e-6, expected / max(len(pairs), 1)))
    fit.random_pairs = n_random
    for index, attr in ((FIRST, "first_name"), (LAST, "last_name"), (STREET_I, "street")):
        values = (getattr(p, attr) for p in chain(customers, people))
        fit.tf[index], fit.tf_default[index] = term_frequencies(values, PRIOR_U[index][1])
    return fit


def best_candidates(pairs: Sequence[Pair], u: list[list[float]]) -> list[Levels]:
    """Each PIMS client's best candidate under the prior (with the clinic's own u): a person
    has one record on each side, so the others are not what a match looks like."""
    prior = Fit(m=[list(row) for row in PRIOR_M], u=u, lam=0.5)
    totals: dict[Levels, float] = {}
    best: dict[str, tuple[float, Levels]] = {}
    for pair in pairs:
        levels = pair.levels
        total = totals.get(levels)
        if total is None:
            total = totals[levels] = sum(weight(prior, i, lv) for i, lv in enumerate(levels))
        found = best.get(pair.person.key)
        if found is None or total > found[0]:
            best[pair.person.key] = (total, levels)
    return [levels for _, levels in best.values()]


def _identified(levels: Levels) -> bool:
    """The same phone, the same email or the same full name: the pairs EM learns from."""
    return levels[PHONE_I] == 1 or levels[EMAIL_I] == 1 or levels[FIRST] == levels[LAST] == 1


FieldWeights = list[tuple[int, int, float]]  # (field index, level, weight) of each field


def weight_table(fit: Fit) -> list[list[float]]:
    """Every field's weight at every level, before term frequencies."""
    return [[weight(fit, i, level) for level in range(len(f.levels))] for i, f in enumerate(FIELDS)]


def field_weights(fit: Fit, table: list[list[float]], pair: Pair) -> FieldWeights:
    """Each field's weight for the pair. A near agreement never counts more than an exact
    one on the same value would: on a common surname "Smyth/Smith" weighs no more than
    "Smith/Smith"."""
    found: FieldWeights = []
    person = pair.person
    for index, level in enumerate(pair.levels):
        if not level:
            continue
        if index in fit.tf:
            exact = weight(fit, index, 1, _TF_VALUE[index](person))
            w = exact if level == 1 else min(table[index][level], exact)
        else:
            w = table[index][level]
        found.append((index, level, w))
    return found


_TF_VALUE = {
    FIRST: lambda p: p.first_name,
    LAST: lambda p: p.last_name,
    STREET_I: lambda p: p.street,
}


def describe(pair: Pair, weights: FieldWeights) -> list[list[Any]]:
    """The weights in words: [field, "surname smyth/smith", 4.2]."""
    mine, theirs = field_values(pair.person), field_values(pair.customer)
    return [
        [FIELDS[i].name, _describe(i, level, mine[i], theirs[i]), round(w, 2)]
        for i, level, w in weights
    ]


def score_pair(fit: Fit, pair: Pair) -> tuple[float, list[list[Any]]]:
    """The pair's match probability and each field's weight, in words."""
    weights = field_weights(fit, weight_table(fit), pair)
    return probability(fit, sum(w for _, _, w in weights)), describe(pair, weights)


Scored = tuple[float, float, Pair, FieldWeights]  # probability, total weight, pair, weights


def plan_matches(pool: CustomerPool, people: Iterable[Person]) -> dict[str, Match]:
    """Verdicts for a whole batch of PIMS clients, keyed by their ``key``."""
    people = list(people)
    if not pool or not people:
        return {}
    pairs = candidate_pairs(pool, people)
    fit = pool.fit = fit_model(list(pool.customers.values()), people, pairs, pool.prior_m)
    limits = thresholds()
    model = fit.summary()
    table = weight_table(fit)
    hopeful = _hopeful_patterns(fit, table, limits["suggest"])
    scored: dict[str, list[Scored]] = defaultdict(list)
    for pair in pairs:
        if not hopeful(pair.levels):
            continue
        weights = field_weights(fit, table, pair)
        total = sum(w for _, _, w in weights)
        p = probability(fit, total)
        if p >= limits["suggest"]:
            scored[pair.person.key].append((p, total, pair, weights))
    phones = Counter(c.phone for c in pool.customers.values() if c.phone)
    plan: dict[str, Match] = {}
    for key, found in scored.items():
        found.sort(key=lambda item: (-item[1], item[2].customer.key))
        plan[key] = _verdict(found, limits, model, phones)
    return _one_customer_one_client(plan)


def _hopeful_patterns(
    fit: Fit, table: list[list[float]], suggest: float
) -> Callable[[Levels], bool]:
    """Whether a pattern of levels can reach ``suggest`` whatever the values behind it: with
    each exact agreement on a field weighed by frequency at its rarest value. Most candidate
    pairs are neighbours that cannot; they are not weighed value by value (``field_weights``).
    """
    rarest = {  # the rarest value the clinic has, or one it has never seen
        index: max(
            weight(fit, index, 1, value)
            for value in (min(tf, key=tf.__getitem__, default=_NEVER_SEEN), _NEVER_SEEN)
        )
        for index, tf in fit.tf.items()
    }
    known: dict[Levels, bool] = {}

    def hopeful(levels: Levels) -> bool:
        found = known.get(levels)
        if found is None:
            most = sum(
                rarest[i] if i in rarest and level == 1 else table[i][level]
                for i, level in enumerate(levels)
                if level
            )
            # A hair over: the same weights summed in another order may differ in the last bit.
            found = known[levels] = probability(fit, most + 1e-9) >= suggest
        return found

    return hopeful


_NEVER_SEEN = "\x00"  # no field holds it: the weight of a value the clinic has never seen


def _verdict(
    found: list[Scored], limits: dict[str, float], model: dict[str, Any], phones: Counter[str]
) -> Match:
    """The best customer for one PIMS client; merged only if nobody else comes close."""
    p, total, pair, weights = found[0]
    evidence = {
        "probability": p,
        "weight": round(total, 2),
        "weights": describe(pair, weights),
        "model": model,
        "thresholds": limits,
    }
    verdict, why = Verdict.POSSIBLE, ""
    if p >= limits["merge"]:
        if pair.levels[FIRST] in FIRST_NAMES_DIFFER and not _own_phone(pair, phones):
            why = "the first names differ (a household?)"
        elif len(found) > 1 and found[1][0] >= limits["merge"] and total - found[1][1] < MARGIN:
            why = "more than one customer fits"
        else:
            verdict = Verdict.MERGE
    return _match(verdict, pair.customer.key, p, evidence, why)


def _own_phone(pair: Pair, phones: Counter[str]) -> bool:
    """The same phone, and no other customer's: a person's number, not a household's."""
    return pair.levels[PHONE_I] == 1 and phones[pair.customer.phone] == 1


def _match(
    verdict: Verdict, customer_key: str, p: float, evidence: dict[str, Any], why: str
) -> Match:
    if why:
        evidence = {**evidence, "held_because": why}
    words = evidence_text(evidence["weights"])
    return Match(verdict, customer_key, _clip(f"{why}: {words}" if why else words), p, evidence)


def _one_customer_one_client(plan: dict[str, Match]) -> dict[str, Match]:
    """A customer several PIMS clients would be merged into goes to the one that fits far
    better than the others (by ``MARGIN``); when none does, all of them go to staff."""
    claims: dict[str, list[str]] = defaultdict(list)
    for key, match in plan.items():
        if match.verdict == Verdict.MERGE:
            claims[match.customer_key].append(key)
    for keys in claims.values():
        if len(keys) < 2:
            continue
        keys.sort(key=lambda k: -plan[k].evidence["weight"])
        best, second = (plan[k].evidence["weight"] for k in keys[:2])
        losers = keys[1:] if best - second >= MARGIN else keys
        for key in losers:
            match = plan[key]
            why = "another PIMS client fits this customer too"
            plan[key] = _match(
                Verdict.POSSIBLE, match.customer_key, match.score, match.evidence, why
            )
    return plan


def _clip(text: str) -> str:
    return text if len(text) <= RULE_MAX else text[: RULE_MAX - 1] + "…"
