"""The Fellegi-Sunter model: m and u probabilities per comparison level, estimated on the data
being matched, and the match weights and probabilities they give.

- u (how often a level is seen between two *different* people) is counted on random pairs of
  the clinic's records: almost every random pair is two different people.
- m (how often a level is seen between two records of the *same* person) and the share of
  candidate pairs that are matches (lambda) are estimated by expectation-maximisation on the
  candidate pairs blocking found, u held fixed.
- Both start from a prior that counts as ``PRIOR_STRENGTH_M`` matches and
  ``PRIOR_STRENGTH_U`` random pairs: a clinic too small for EM to say much keeps the prior; as
  its data grows its own estimates take over (a Dirichlet prior, the maximum a posteriori form
  of EM). The prior for m is the other clinics' fits pooled (``records.match_models``) blended
  with the built-in ``PRIOR_M``; ``PRIOR_M`` and ``PRIOR_U`` are hand-set, conservative values
  (checked, not fitted, against FEBRL).
- An exact agreement on a first name, a surname or a street weighs by how common the value is
  (term frequency): two "Smith"s agreeing is weaker evidence than two "Zabriskie"s.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from records.linkage.compare import FIELDS, Levels

MODEL_VERSION = "fs-1"
PRIOR_STRENGTH_M = 100.0  # the prior counts as this many matched pairs
PRIOR_STRENGTH_U = 2000.0  # ... and as this many random pairs
PRIOR_STRENGTH_LAMBDA = 20.0
PRIOR_LAMBDA = 0.05
TF_PSEUDO_COUNT = 100.0  # records: below this a value's own frequency is not trusted alone
RANDOM_PAIRS = 20_000
EM_MAX_ITERATIONS = 200
EM_TOLERANCE = 1e-5
MAX_WEIGHT = 20.0  # no single field is ever more than about a million to one

# Per field, the probability of each level (level 0, "missing", is not a level of evidence).
PRIOR_M: tuple[tuple[float, ...], ...] = (
    (0.0, 0.84, 0.01, 0.01, 0.03, 0.07, 0.02, 0.02),  # first name
    (0.0, 0.85, 0.01, 0.07, 0.03, 0.01, 0.03),  # surname
    (0.0, 0.88, 0.08, 0.04),  # phone
    (0.0, 0.9, 0.04, 0.06),  # email
    (0.0, 0.88, 0.06, 0.06),  # street number
    (0.0, 0.84, 0.08, 0.04, 0.04),  # street
    (0.0, 0.82, 0.08, 0.10),  # address line 2
    (0.0, 0.86, 0.08, 0.06),  # city
    (0.0, 0.88, 0.08, 0.04),  # postcode
    (0.0, 0.8, 0.2),  # pets
)
PRIOR_U: tuple[tuple[float, ...], ...] = (
    (0.0, 0.01, 0.0005, 0.002, 0.005, 0.01, 0.3, 0.6725),
    (0.0, 0.005, 0.0002, 0.002, 0.01, 0.003, 0.9798),
    (0.0, 0.0005, 0.001, 0.9985),
    (0.0, 0.0005, 0.0005, 0.999),
    (0.0, 0.02, 0.05, 0.93),
    (0.0, 0.005, 0.005, 0.02, 0.97),
    (0.0, 0.01, 0.01, 0.98),
    (0.0, 0.02, 0.01, 0.97),
    (0.0, 0.01, 0.05, 0.94),
    (0.0, 0.05, 0.95),
)

Table = list[list[float]]


@dataclass
class Fit:
    """A fitted model: m, u and lambda, and how much of it is the clinic's own data."""

    m: Table
    u: Table
    lam: float
    pairs: int = 0  # candidate pairs EM saw
    random_pairs: int = 0
    iterations: int = 0
    converged: bool = False
    own_share: float = 0.0  # the weight of the clinic's data against the prior's, 0 to 1
    # field index -> value -> term frequency (u of an exact agreement on that value)
    tf: dict[int, dict[str, float]] = field(default_factory=dict)
    tf_default: dict[int, float] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        return {
            "version": MODEL_VERSION,
            "pairs": self.pairs,
            "random_pairs": self.random_pairs,
            "em_iterations": self.iterations,
            "em_converged": self.converged,
            "own_share": round(self.own_share, 3),
            "lambda": round(self.lam, 5),
        }


def prior_fit() -> Fit:
    return Fit(m=[list(row) for row in PRIOR_M], u=[list(row) for row in PRIOR_U], lam=PRIOR_LAMBDA)


def estimate_u(level_rows: Iterable[Levels]) -> tuple[Table, int]:
    """u from the levels of random pairs, smoothed by the prior."""
    counts = [[0] * len(f.levels) for f in FIELDS]
    n = 0
    for levels in level_rows:
        n += 1
        for i, level in enumerate(levels):
            counts[i][level] += 1
    table: Table = []
    for i, row in enumerate(counts):
        seen = sum(row[1:])
        table.append(
            [0.0]
            + [
                (row[level] + PRIOR_STRENGTH_U * PRIOR_U[i][level]) / (seen + PRIOR_STRENGTH_U)
                for level in range(1, len(row))
            ]
        )
    return table, n


def random_pairs(n_left: int, n_right: int, *, count: int, seed: int = 0) -> list[tuple[int, int]]:
    """Up to ``count`` distinct random (left, right) index pairs."""
    if n_left == 0 or n_right == 0:
        return []
    total = n_left * n_right
    rng = random.Random(seed)
    if total <= count:
        return [(i, j) for i in range(n_left) for j in range(n_right)]
    return [divmod(k, n_right) for k in rng.sample(range(total), count)]


def em(
    patterns: Counter[Levels],
    *,
    u: Table,
    start: Fit | None = None,
    prior_m: Sequence[Sequence[float]] = PRIOR_M,
    strength: float = PRIOR_STRENGTH_M,
    max_lambda: float = 1.0,
) -> Fit:
    """Estimate m and lambda on candidate-pair patterns (levels -> how many pairs), u fixed.

    ``max_lambda`` is the most lambda can be: a person has one record on each side, so there
    are at most as many matches as PIMS clients (or customers) with a candidate. Without that
    bound EM can settle on "every candidate pair is a match" when the data is uniform.
    """
    fit = start or prior_fit()
    m = [list(row) for row in fit.m]
    lam = fit.lam
    total = sum(patterns.values())
    items = list(patterns.items())
    converged = False
    iterations = 0
    expected = 0.0
    for iterations in range(1, EM_MAX_ITERATIONS + 1):  # noqa: B007 (kept after the loop)
        sums = [[0.0] * len(f.levels) for f in FIELDS]
        expected = 0.0
        for levels, count in items:
            p = posterior(levels, m, u, lam) * count
            expected += p
            for i, level in enumerate(levels):
                if level:
                    sums[i][level] += p
        new_m = _m_step(sums, prior_m, strength)
        new_lam = min(
            max_lambda,
            (expected + PRIOR_STRENGTH_LAMBDA * PRIOR_LAMBDA) / (total + PRIOR_STRENGTH_LAMBDA),
        )
        change = max(
            abs(new_lam - lam),
            *(
                abs(a - b)
                for row, new_row in zip(m, new_m, strict=True)
                for a, b in zip(row, new_row, strict=True)
            ),
        )
        m, lam = new_m, new_lam
        if change < EM_TOLERANCE:
            converged = True
            break
    return Fit(
        m=m,
        u=u,
        lam=lam,
        pairs=total,
        iterations=iterations,
        converged=converged,
        own_share=expected / (expected + strength) if expected else 0.0,
    )


def _m_step(
    sums: Sequence[Sequence[float]], prior_m: Sequence[Sequence[float]], strength: float
) -> Table:
    table: Table = []
    for i, row in enumerate(sums):
        seen = sum(row[1:])
        table.append(
            [0.0]
            + [
                (row[level] + strength * prior_m[i][level]) / (seen + strength)
                for level in range(1, len(row))
            ]
        )
    return table


def posterior(levels: Levels, m: Table, u: Table, lam: float) -> float:
    log_odds = math.log(lam / (1 - lam))
    for i, level in enumerate(levels):
        if level:
            log_odds += math.log(m[i][level] / u[i][level])
    return _logistic(log_odds)


def _logistic(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def term_frequencies(values: Iterable[str], u_exact: float) -> tuple[dict[str, float], float]:
    """For each value, the chance a random other record has it too, smoothed towards the
    prior's ``u_exact`` while the clinic has few records; and that default (a value never
    seen)."""
    counts = Counter(v for v in values if v)
    n = sum(counts.values())
    tf = {
        value: (count + TF_PSEUDO_COUNT * u_exact) / (n + TF_PSEUDO_COUNT)
        for value, count in counts.items()
    }
    return tf, TF_PSEUDO_COUNT * u_exact / (n + TF_PSEUDO_COUNT)


def weight(fit: Fit, index: int, level: int, value: str = "") -> float:
    """log2(m/u) of one field at one level; an exact agreement weighs by its value's rarity."""
    if not level:
        return 0.0
    u = fit.u[index][level]
    if level in FIELDS[index].tf_levels and index in fit.tf:
        u = fit.tf[index].get(value, fit.tf_default[index])
    w = math.log2(fit.m[index][level] / u)
    return max(-MAX_WEIGHT, min(MAX_WEIGHT, w))


def probability(fit: Fit, total_weight: float) -> float:
    """The match probability of a candidate pair whose field weights sum to ``total_weight``."""
    prior = math.log2(fit.lam / (1 - fit.lam))
    return _logistic((prior + total_weight) * math.log(2))


def prior_weight(fit: Fit) -> float:
    return math.log2(fit.lam / (1 - fit.lam))
